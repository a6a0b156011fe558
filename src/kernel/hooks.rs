//! Per-component fault hooks: the component-side half of the fault catalogue.
//!
//! Links carry the network faults; what acts on a component itself lives here, one [`ComponentHooks`]
//! per component name, owned by the supervisor and handed to every incarnation of the component through
//! its `Ctx`. The hooks are plain data that the chaos layer sets and components consult at a few fixed
//! points, so no component has fault-specific code:
//! - a clock offset (time faults): the component's `Ctx::clock` reads it on every `now()`;
//! - a pause gate (process pause): `Ctx::sleep_or_stop` and the component's links wait while it is set;
//! - I/O faults (stores and sinks): [`ComponentHooks::io_write`] is called before every write, and
//!   [`ComponentHooks::io_data`] on the bytes of a write (wrong data).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::seed::{Rng, Seed};

/// I/O faults in force on one store or sink.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IoFaults {
    /// Extra time every write takes.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Probability that a write fails with an I/O error, in `[0, 1]`.
    pub error_rate: f64,
    /// Every write fails with "No space left on device".
    pub disk_full: bool,
    /// Written bytes are wrong (Chaos Mesh's IOChaos `mistake`).
    pub mistake: Option<Mistake>,
}

/// Wrong data in writes: up to `occurrences` runs of at most `length` bytes each are overwritten with
/// zeros or random bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mistake {
    /// Random bytes (true) or zeros.
    pub random: bool,
    /// Runs per write, at most.
    pub occurrences: u32,
    /// Bytes per run, at most.
    pub length: u32,
}

impl IoFaults {
    /// True when nothing is injected.
    pub fn is_clear(&self) -> bool {
        *self == IoFaults::default()
    }
}

/// The fault hooks of one component (shared by all its incarnations).
#[derive(Debug)]
pub struct ComponentHooks {
    skew_ms: Arc<AtomicI64>,
    /// The share of a core the component gets (1 without CPU stress), as `f64` bits.
    cpu_share: AtomicU64,
    paused: watch::Sender<bool>,
    io: Mutex<(IoFaults, Rng)>,
}

impl ComponentHooks {
    /// Hooks for component `name`, with an I/O random stream derived from `seed`.
    pub fn new(name: &str, seed: Seed) -> Self {
        ComponentHooks {
            skew_ms: Arc::new(AtomicI64::new(0)),
            cpu_share: AtomicU64::new(1f64.to_bits()),
            paused: watch::channel(false).0,
            io: Mutex::new((IoFaults::default(), seed.stream(&format!("io:{name}")))),
        }
    }

    /// The offset added to this component's calendar clock, in milliseconds (shared with its clocks).
    pub fn skew(&self) -> Arc<AtomicI64> {
        self.skew_ms.clone()
    }

    /// Sets the clock offset.
    pub fn set_skew(&self, offset_ms: i64) {
        self.skew_ms.store(offset_ms, Ordering::SeqCst);
    }

    /// Sets the share of a core the component gets (CPU stress), in `(0, 1]`.
    pub fn set_cpu_share(&self, share: f64) {
        self.cpu_share.store(share.clamp(f64::MIN_POSITIVE, 1.0).to_bits(), Ordering::SeqCst);
    }

    /// The share of a core the component gets: 1 unless CPU stressors run beside it.
    pub fn cpu_share(&self) -> f64 {
        f64::from_bits(self.cpu_share.load(Ordering::SeqCst))
    }

    /// Freezes (true) or resumes (false) the component.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Returns once the component is not paused.
    pub async fn wait_unpaused(&self) {
        let mut rx = self.paused.subscribe();
        // The sender lives as long as `self`, so `wait_for` only fails if it is gone: nothing to wait for.
        let _ = rx.wait_for(|p| !*p).await;
    }

    fn io(&self) -> MutexGuard<'_, (IoFaults, Rng)> {
        self.io.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the I/O faults in force.
    pub fn set_io(&self, faults: IoFaults) {
        self.io().0 = faults;
    }

    /// Called before a write: waits out the injected latency, then fails the write when the disk is
    /// "full" or the error draw says so.
    pub async fn io_write(&self) -> std::io::Result<()> {
        let (latency, outcome) = {
            let mut io = self.io();
            let (faults, rng) = &mut *io;
            if faults.is_clear() {
                return Ok(());
            }
            let outcome = if faults.disk_full {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device (injected)",
                ))
            } else if faults.error_rate > 0.0 && rng.r#gen::<f64>() < faults.error_rate {
                Err(std::io::Error::other("Input/output error (injected)"))
            } else {
                Ok(())
            };
            (faults.latency, outcome)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        outcome
    }

    /// The bytes a write puts down: `data` itself, or with runs overwritten while a mistake is injected.
    pub fn io_data<'a>(&self, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let mut io = self.io();
        let (faults, rng) = &mut *io;
        let Some(m) = faults.mistake.filter(|_| !data.is_empty()) else { return data.into() };
        let mut out = data.to_vec();
        let runs = rng.gen_range(1..=m.occurrences.max(1));
        for _ in 0..runs {
            let len = (rng.gen_range(1..=m.length.max(1)) as usize).min(out.len());
            let start = rng.gen_range(0..=out.len() - len);
            for b in &mut out[start..start + len] {
                *b = if m.random { rng.r#gen() } else { 0 };
            }
        }
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn io_faults_delay_and_fail() {
        let h = ComponentHooks::new("HADOOP", Seed(1));
        assert!(h.io_write().await.is_ok());
        h.set_io(IoFaults { latency: Duration::from_millis(250), ..Default::default() });
        let t = tokio::time::Instant::now();
        assert!(h.io_write().await.is_ok());
        assert_eq!(t.elapsed(), Duration::from_millis(250));
        h.set_io(IoFaults { disk_full: true, ..Default::default() });
        let err = h.io_write().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        h.set_io(IoFaults { error_rate: 0.5, ..Default::default() });
        let failed = futures::future::join_all((0..200).map(|_| h.io_write())).await;
        let n = failed.iter().filter(|r| r.is_err()).count();
        assert!((60..140).contains(&n), "{n} of 200 failed at rate 0.5");
    }

    #[tokio::test(start_paused = true)]
    async fn pause_gate_blocks_until_resumed() {
        let h = Arc::new(ComponentHooks::new("FLINK", Seed(1)));
        h.set_paused(true);
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.wait_unpaused().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        h.set_paused(false);
        waiter.await.unwrap();
    }
}
