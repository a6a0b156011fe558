//! Time as components see it: wall-clock in live mode, virtual in sim mode.
//!
//! Sim mode runs on a paused tokio clock, so `tokio::time::Instant` only moves when every task is
//! waiting on a timer. Calendar time is derived from it (`epoch + elapsed`), which keeps timestamps in
//! payloads, file names and the trace identical from run to run. Nothing in sim mode may call
//! `SystemTime::now` or `chrono::Utc::now`: this type is the only door to "now".

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::time::Instant;

/// A component's view of time. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: ClockKind,
    start: Instant,
    /// A component's clock offset in milliseconds (time faults); `None` for the run clock.
    skew: Option<Arc<AtomicI64>>,
}

#[derive(Clone, Debug)]
enum ClockKind {
    Live,
    Sim { epoch: DateTime<Utc> },
}

impl Clock {
    /// A wall clock. `start` is taken now.
    pub fn live() -> Self {
        Clock { kind: ClockKind::Live, start: Instant::now(), skew: None }
    }

    /// A virtual clock whose calendar time starts at `epoch`. Must be created inside the sim runtime,
    /// so that `start` is read from its paused clock.
    pub fn sim(epoch: DateTime<Utc>) -> Self {
        Clock { kind: ClockKind::Sim { epoch }, start: Instant::now(), skew: None }
    }

    /// True in sim mode.
    pub fn is_sim(&self) -> bool {
        matches!(self.kind, ClockKind::Sim { .. })
    }

    /// Monotonic time since the run started (virtual in sim mode).
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// The instant the run started, for `sleep_until` arithmetic.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// This clock shifted by the offset in `skew` (milliseconds, read on every call): a component's view
    /// of time under a clock fault. Monotonic time (`elapsed`, timers) is not shifted, as a skewed wall
    /// clock does not change how long a sleep takes.
    pub fn skewed(&self, skew: Arc<AtomicI64>) -> Clock {
        Clock { skew: Some(skew), ..self.clone() }
    }

    /// Calendar time now.
    pub fn now(&self) -> DateTime<Utc> {
        let now = self.unskewed_now();
        match &self.skew {
            Some(skew) => match skew.load(Ordering::Relaxed) {
                0 => now,
                ms => now + chrono::Duration::milliseconds(ms),
            },
            None => now,
        }
    }

    fn unskewed_now(&self) -> DateTime<Utc> {
        match &self.kind {
            ClockKind::Live => Utc::now(),
            ClockKind::Sim { epoch } => {
                *epoch + chrono::Duration::from_std(self.elapsed()).unwrap_or(chrono::Duration::MAX)
            }
        }
    }
}

thread_local! {
    static LOG_CLOCK: std::cell::RefCell<Option<Clock>> = const { std::cell::RefCell::new(None) };
}

/// While alive, log lines written from this thread carry `clock`'s time (see [`LogTime`]).
pub struct LogClockGuard(());

/// Makes log lines of this thread (the sim thread) show the run's virtual time.
pub fn log_with(clock: Clock) -> LogClockGuard {
    LOG_CLOCK.with(|c| *c.borrow_mut() = Some(clock));
    LogClockGuard(())
}

impl Drop for LogClockGuard {
    fn drop(&mut self) {
        LOG_CLOCK.with(|c| *c.borrow_mut() = None);
    }
}

/// A log timer: the sim clock on the sim thread, the wall clock elsewhere.
pub struct LogTime;

impl tracing_subscriber::fmt::time::FormatTime for LogTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let sim = LOG_CLOCK.with(|c| c.borrow().as_ref().map(Clock::now));
        write!(w, "{}", iso_millis(sim.unwrap_or_else(Utc::now)))
    }
}

/// Formats a timestamp the way the reference sensor and Flink job do: `2020-02-18T21:23:32.106Z`.
pub fn iso_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats timestamps like [`iso_millis`], remembering the last one: many events share a millisecond.
#[derive(Debug, Default)]
pub struct IsoCache {
    ms: Option<i64>,
    text: String,
}

impl IsoCache {
    /// `t` as `2020-02-18T21:23:32.106Z`.
    pub fn format(&mut self, t: DateTime<Utc>) -> &str {
        let ms = t.timestamp_millis();
        if self.ms != Some(ms) {
            self.ms = Some(ms);
            self.text = iso_millis(t);
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sim_clock_follows_virtual_time() {
        let epoch =
            DateTime::parse_from_rfc3339("2020-02-21T21:20:00Z").map(|t| t.with_timezone(&Utc)).unwrap();
        let clock = Clock::sim(epoch);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(clock.elapsed(), Duration::from_millis(1_500));
        assert_eq!(iso_millis(clock.now()), "2020-02-21T21:20:01.500Z");
        let mut cache = IsoCache::default();
        assert_eq!(cache.format(clock.now()), "2020-02-21T21:20:01.500Z");
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(cache.format(clock.now()), "2020-02-21T21:20:01.501Z");
    }
}
