//! Per-component fault hooks: the component-side half of the fault catalogue.
//!
//! Links carry the network faults; what acts on a component itself lives here, one [`ComponentHooks`]
//! per component name, owned by the supervisor and handed to every incarnation of the component through
//! its `Ctx`. The hooks are plain data that the chaos layer sets and components consult at a few fixed
//! points, so no component has fault-specific code:
//! - a clock offset (time faults): the component's `Ctx::clock` reads it on every `now()`;
//! - a pause gate (process pause): `Ctx::sleep_or_stop` and the component's links wait while it is set;
//! - I/O faults (stores and sinks): [`ComponentHooks::io`] is called before every read or write with the
//!   operation's path, and [`ComponentHooks::io_data`] on the bytes of a write (wrong data).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::seed::{Rng, Seed};

/// What an I/O operation does, as Chaos Mesh's IOChaos `methods` group them: `read`, `open`, `getattr`,
/// `readdir`, … read; `write`, `create`, `fsync`, `unlink`, `rename`, … write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMethod {
    /// Reads (the order store's queries).
    Read,
    /// Writes (every store and sink).
    Write,
}

/// One I/O fault in force on a store or sink, with the operations it hits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IoFaults {
    /// Extra time every hit operation takes.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Probability that a hit operation fails, in `[0, 1]`.
    pub error_rate: f64,
    /// The error number of those failures (none: 5, EIO).
    pub errno: Option<i32>,
    /// Every hit write fails with "No space left on device".
    pub disk_full: bool,
    /// Written bytes are wrong (Chaos Mesh's IOChaos `mistake`).
    pub mistake: Option<Mistake>,
    /// The operations hit; none listed: writes.
    pub methods: Vec<IoMethod>,
    /// A glob over the operation's path, relative to the store's root (`*` matches `/` too); none: all.
    pub path: Option<String>,
    /// The share of matching operations a latency or mistake hits, in `[0, 1]`; none: all.
    pub rate: Option<f64>,
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
    /// Whether this fault hits a `method` operation on `path`.
    pub fn hits(&self, method: IoMethod, path: &str) -> bool {
        let methods_hit =
            if self.methods.is_empty() { method == IoMethod::Write } else { self.methods.contains(&method) };
        methods_hit && self.path.as_deref().is_none_or(|glob| wildmatch::WildMatch::new(glob).matches(path))
    }
}

/// The fault hooks of one component (shared by all its incarnations).
#[derive(Debug)]
pub struct ComponentHooks {
    skew_ms: Arc<AtomicI64>,
    /// The share of a core the component gets (1 without CPU stress), as `f64` bits.
    cpu_share: AtomicU64,
    paused: watch::Sender<bool>,
    io: Mutex<(Vec<IoFaults>, Rng)>,
}

impl ComponentHooks {
    /// Hooks for component `name`, with an I/O random stream derived from `seed`.
    pub fn new(name: &str, seed: Seed) -> Self {
        ComponentHooks {
            skew_ms: Arc::new(AtomicI64::new(0)),
            cpu_share: AtomicU64::new(1f64.to_bits()),
            paused: watch::channel(false).0,
            io: Mutex::new((Vec::new(), seed.stream(&format!("io:{name}")))),
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

    fn io_state(&self) -> MutexGuard<'_, (Vec<IoFaults>, Rng)> {
        self.io.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the I/O faults in force.
    pub fn set_io(&self, faults: Vec<IoFaults>) {
        self.io_state().0 = faults;
    }

    /// Called before a read or write of `path` (relative to the store's root): waits out the longest
    /// injected latency hitting it, then fails it when the disk is "full" (writes) or an error draw says
    /// so.
    pub async fn io(&self, method: IoMethod, path: &str) -> std::io::Result<()> {
        let (latency, outcome) = {
            let mut io = self.io_state();
            let (faults, rng) = &mut *io;
            let mut latency = Duration::ZERO;
            let mut outcome = Ok(());
            for f in faults.iter().filter(|f| f.hits(method, path)) {
                if !f.latency.is_zero() && f.rate.is_none_or(|r| rng.r#gen::<f64>() < r) {
                    latency = latency.max(f.latency);
                }
                if outcome.is_err() {
                    continue;
                }
                if f.disk_full && method == IoMethod::Write {
                    outcome = Err(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "No space left on device (injected)",
                    ));
                } else if f.error_rate > 0.0 && rng.r#gen::<f64>() < f.error_rate {
                    let os = std::io::Error::from_raw_os_error(f.errno.unwrap_or(5));
                    outcome = Err(std::io::Error::new(os.kind(), format!("{os} (injected)")));
                }
            }
            (latency, outcome)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        outcome
    }

    /// [`ComponentHooks::io`] for a write.
    pub async fn io_write(&self, path: &str) -> std::io::Result<()> {
        self.io(IoMethod::Write, path).await
    }

    /// The bytes a write of `path` puts down: `data` itself, or with runs overwritten while a mistake
    /// hitting it is injected.
    pub fn io_data<'a>(&self, path: &str, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let mut io = self.io_state();
        let (faults, rng) = &mut *io;
        let mistake = faults
            .iter()
            .filter(|f| f.hits(IoMethod::Write, path))
            .find_map(|f| f.mistake.map(|m| (m, f.rate)));
        let Some((m, rate)) = mistake.filter(|_| !data.is_empty()) else { return data.into() };
        if rate.is_some_and(|r| rng.r#gen::<f64>() >= r) {
            return data.into();
        }
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
        assert!(h.io_write("a").await.is_ok());
        h.set_io(vec![IoFaults { latency: Duration::from_millis(250), ..Default::default() }]);
        let t = tokio::time::Instant::now();
        assert!(h.io_write("a").await.is_ok());
        assert_eq!(t.elapsed(), Duration::from_millis(250));
        assert!(h.io(IoMethod::Read, "a").await.is_ok());
        assert_eq!(t.elapsed(), Duration::from_millis(250), "the catalogue's kinds hit writes only");
        h.set_io(vec![IoFaults { disk_full: true, ..Default::default() }]);
        let err = h.io_write("a").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        h.set_io(vec![IoFaults { error_rate: 0.5, ..Default::default() }]);
        let failed = futures::future::join_all((0..200).map(|_| h.io_write("a"))).await;
        let n = failed.iter().filter(|r| r.is_err()).count();
        assert!((60..140).contains(&n), "{n} of 200 failed at rate 0.5");
    }

    #[tokio::test(start_paused = true)]
    async fn io_faults_hit_their_methods_and_paths_with_their_errno() {
        let h = ComponentHooks::new("ORDER-STORE", Seed(1));
        let denied = IoFaults {
            error_rate: 1.0,
            errno: Some(13),
            methods: vec![IoMethod::Read],
            path: Some("2020-*/**".into()),
            ..Default::default()
        };
        let slow =
            IoFaults { latency: Duration::from_secs(1), path: Some("outbox".into()), ..Default::default() };
        h.set_io(vec![denied, slow]);
        let err = h.io(IoMethod::Read, "2020-02-21/x").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("Permission denied"), "{err}");
        assert!(h.io(IoMethod::Write, "2020-02-21/x").await.is_ok(), "a read fault spares writes");
        assert!(h.io(IoMethod::Read, "2021-01-01/x").await.is_ok(), "and other paths");
        let t = tokio::time::Instant::now();
        h.io_write("orders").await.unwrap();
        assert_eq!(t.elapsed(), Duration::ZERO);
        h.io_write("outbox").await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_secs(1));
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
