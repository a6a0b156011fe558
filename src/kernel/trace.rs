//! The event trace: every significant thing that happens in a run, one JSON object per line.
//!
//! The trace is the run's ground truth and its fingerprint. In sim mode events are emitted from one
//! thread in a deterministic order and stamped with virtual time, so the SHA-256 over the bytes
//! written (the `trace-digest`) is identical for identical seeds. Each line is
//! `{"seq":N,"t":"<ISO time>","ms":<ms since start>,"component":"…","kind":"…","data":{…}}`; `data`
//! keeps the field order its emitter wrote, which is fixed in the code, so it never varies.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::clock::{Clock, IsoCache};

/// How much goes into the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TraceLevel {
    /// Everything, one event per record per hop (the default).
    #[default]
    Records,
    /// Only what is not per record: state changes, faults, connections, drops, windows, job results.
    Lifecycle,
}

/// How many lifecycle events [`Trace::recent`] keeps.
pub const TAIL: usize = 1024;

/// A handle on the run's trace. Cheap to clone; all clones write to the same file.
#[derive(Clone)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
    records: bool,
}

struct Inner {
    writer: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    hasher: Sha256,
    seq: u64,
    by_kind: BTreeMap<String, u64>,
    keep: Option<Vec<String>>,
    error: Option<String>,
    /// The line being built, reused from event to event.
    buf: Vec<u8>,
    /// The newest lifecycle lines.
    tail: VecDeque<String>,
    time: IsoCache,
}

/// What a finished trace amounts to.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TraceSummary {
    /// Number of events written.
    pub events: u64,
    /// Lower-case hex SHA-256 of every byte of the trace file.
    pub digest: String,
    /// Events counted per kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Where the trace was written, if anywhere.
    pub path: Option<PathBuf>,
}

impl Trace {
    /// A trace written to `path` (created or truncated).
    pub fn to_file(path: &Path, clock: Clock) -> std::io::Result<Trace> {
        let file = File::create(path)?;
        Ok(Trace::build(
            Some(BufWriter::with_capacity(1 << 16, file)),
            Some(path.to_path_buf()),
            clock,
            false,
        ))
    }

    /// A trace that only counts and hashes (benchmarks), writing nothing.
    pub fn in_memory(clock: Clock) -> Trace {
        Trace::build(None, None, clock, false)
    }

    /// A trace that also keeps every line in memory, for tests.
    pub fn recording(clock: Clock) -> Trace {
        Trace::build(None, None, clock, true)
    }

    fn build(writer: Option<BufWriter<File>>, path: Option<PathBuf>, clock: Clock, keep: bool) -> Trace {
        let inner = Inner {
            writer,
            path,
            hasher: Sha256::new(),
            seq: 0,
            by_kind: BTreeMap::new(),
            keep: keep.then(Vec::new),
            error: None,
            buf: Vec::with_capacity(256),
            tail: VecDeque::with_capacity(TAIL),
            time: IsoCache::default(),
        };
        Trace { inner: Arc::new(Mutex::new(inner)), clock, records: true }
    }

    /// The same trace keeping only events of `level`.
    pub fn with_level(mut self, level: TraceLevel) -> Trace {
        self.records = level == TraceLevel::Records;
        self
    }

    /// Appends a per-record event (`record.published`, `record.received`, …), unless the level omits them.
    pub fn emit_record<D: Serialize + ?Sized>(&self, component: &str, kind: &str, data: &D) {
        if self.records {
            self.write(component, kind, data, false);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one event. `data` should serialize to a JSON object (a struct, a map, or `json!({…})`).
    pub fn emit<D: Serialize + ?Sized>(&self, component: &str, kind: &str, data: &D) {
        self.write(component, kind, data, true);
    }

    fn write<D: Serialize + ?Sized>(&self, component: &str, kind: &str, data: &D, lifecycle: bool) {
        let now = self.clock.now();
        let ms = self.clock.elapsed().as_millis();
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.seq += 1;
        let mut line = std::mem::take(&mut inner.buf);
        line.clear();
        line.extend_from_slice(b"{\"seq\":");
        line.extend_from_slice(inner.seq.to_string().as_bytes());
        line.extend_from_slice(b",\"t\":\"");
        line.extend_from_slice(inner.time.format(now).as_bytes());
        line.extend_from_slice(b"\",\"ms\":");
        line.extend_from_slice(ms.to_string().as_bytes());
        line.extend_from_slice(b",\"component\":");
        let encoded = serde_json::to_writer(&mut line, component)
            .and_then(|()| {
                line.extend_from_slice(b",\"kind\":");
                serde_json::to_writer(&mut line, kind)
            })
            .and_then(|()| {
                line.extend_from_slice(b",\"data\":");
                serde_json::to_writer(&mut line, data)
            });
        if let Err(e) = encoded {
            // Only a Serialize impl that fails (none of ours) gets here; keep the line valid JSON.
            tracing::error!("trace event {kind} of {component} could not be encoded: {e}");
            line.truncate(line.iter().rposition(|&b| b == b':').map_or(0, |i| i + 1));
            line.extend_from_slice(b"null");
        }
        line.extend_from_slice(b"}\n");
        inner.hasher.update(&line);
        match inner.by_kind.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                inner.by_kind.insert(kind.to_string(), 1);
            }
        }
        if let Some(w) = inner.writer.as_mut()
            && let Err(e) = w.write_all(&line)
        {
            let msg = format!("writing the trace failed: {e}");
            tracing::error!("{msg}");
            inner.writer = None;
            inner.error = Some(msg);
        }
        if let Some(keep) = inner.keep.as_mut() {
            keep.push(String::from_utf8_lossy(&line).into_owned());
        }
        if lifecycle {
            // The oldest line's buffer is reused, so a full tail allocates nothing.
            let mut kept = if inner.tail.len() >= TAIL {
                inner.tail.pop_front().unwrap_or_default()
            } else {
                String::new()
            };
            kept.clear();
            kept.push_str(std::str::from_utf8(&line[..line.len() - 1]).unwrap_or(""));
            inner.tail.push_back(kept);
        }
        inner.buf = line;
    }

    /// Number of events of `kind` so far.
    pub fn count(&self, kind: &str) -> u64 {
        self.lock().by_kind.get(kind).copied().unwrap_or(0)
    }

    /// The newest lifecycle events (not per-record ones), oldest first: at most [`TAIL`] lines, without
    /// their newline. The dashboard shows a component's recent events from them.
    pub fn recent(&self) -> Vec<String> {
        self.lock().tail.iter().cloned().collect()
    }

    /// The kept lines (only for [`Trace::recording`]).
    pub fn lines(&self) -> Vec<String> {
        self.lock().keep.clone().unwrap_or_default()
    }

    /// Flushes the file and returns the summary. The trace stays usable (later events keep hashing).
    pub fn finish(&self) -> std::io::Result<TraceSummary> {
        let mut inner = self.lock();
        if let Some(w) = inner.writer.as_mut() {
            w.flush()?;
        }
        if let Some(e) = inner.error.clone() {
            return Err(std::io::Error::other(e));
        }
        Ok(TraceSummary {
            events: inner.seq,
            digest: hex::encode(inner.hasher.clone().finalize()),
            by_kind: inner.by_kind.clone(),
            path: inner.path.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test(start_paused = true)]
    async fn lines_are_stable_and_hashed() {
        let epoch = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap().to_utc();
        let run = || {
            let t = Trace::recording(Clock::sim(epoch));
            t.emit("FLINK", "window.emitted", &json!({"b": 2, "a": 1}));
            t.emit("SENSOR", "record.published", &json!({"topic": "customTopic"}));
            t
        };
        let (a, b) = (run(), run());
        assert_eq!(a.lines(), b.lines());
        assert_eq!(
            a.lines()[0],
            "{\"seq\":1,\"t\":\"2020-01-01T00:00:00.000Z\",\"ms\":0,\"component\":\"FLINK\",\"kind\":\"window.emitted\",\"data\":{\"b\":2,\"a\":1}}\n"
        );
        let (sa, sb) = (a.finish().unwrap(), b.finish().unwrap());
        assert_eq!(sa.digest, sb.digest);
        assert_eq!(sa.events, 2);
        assert_eq!(sa.by_kind.get("record.published"), Some(&1));
        let c = Trace::recording(Clock::sim(epoch));
        c.emit("FLINK", "window.emitted", &json!({"a": 1, "b": 3}));
        assert_ne!(c.finish().unwrap().digest, sa.digest);
    }
}
