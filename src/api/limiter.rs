//! Failed credential checks, per peer: past [`MAX_FAILURES`] in [`WINDOW`] a peer is answered 429 at
//! once, without running argon2 — a flood of wrong tokens can no longer take memory (argon2 holds
//! ~19 MiB per check) nor make a real client wait behind it. The table is bounded ([`MAX_PEERS`]; the
//! stalest peer goes first) whatever the number of addresses a flood comes from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed checks a peer may have within [`WINDOW`].
pub const MAX_FAILURES: u32 = 20;
/// How long failures count.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Peers remembered at once.
pub const MAX_PEERS: usize = 4096;

/// Failures per peer in the current window.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    peers: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    /// Whether `peer` has used up its failures (then: for how much longer).
    pub fn blocked(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let &(count, since) = peers.get(&peer)?;
        let left = WINDOW.checked_sub(now.saturating_duration_since(since)).filter(|l| !l.is_zero())?;
        (count >= MAX_FAILURES).then_some(left)
    }

    /// Counts one failed check of `peer`.
    pub fn failed(&self, peer: IpAddr, now: Instant) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            peers.retain(|_, (_, since)| now.saturating_duration_since(*since) < WINDOW);
            if peers.len() >= MAX_PEERS
                && let Some(stalest) = peers.iter().min_by_key(|(_, (_, since))| *since).map(|(ip, _)| *ip)
            {
                peers.remove(&stalest);
            }
        }
        let entry = peers.entry(peer).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_past_its_failures_waits_out_the_window_and_others_do_not() {
        let limiter = FailureLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(limiter.blocked(a, t0), None);
            limiter.failed(a, t0);
        }
        assert_eq!(limiter.blocked(a, t0), Some(WINDOW));
        assert_eq!(limiter.blocked(b, t0), None, "another peer is not affected");
        assert_eq!(limiter.blocked(a, t0 + WINDOW), None, "the window passed");
        limiter.failed(a, t0 + WINDOW);
        assert_eq!(limiter.blocked(a, t0 + WINDOW), None, "counting starts over");
    }

    #[test]
    fn the_table_stays_bounded_whatever_the_number_of_peers() {
        let limiter = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 500) {
            limiter.failed(IpAddr::from(i.to_be_bytes()), t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(limiter.peers.lock().unwrap().len() <= MAX_PEERS);
    }
}
