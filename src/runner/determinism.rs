//! `chaoslab run --sim --check-determinism`: the same scenario twice in one process, traces compared line
//! by line — as madsim's `MADSIM_TEST_CHECK_DETERMINISM` does for a test. Either both traces are
//! byte-identical (the digest is printed), or the first line that differs is reported with its sequence
//! number, virtual time and component, and both versions of it.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::Run;

/// What a determinism check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Determinism {
    /// Both runs wrote the same trace.
    Deterministic {
        /// The trace digest (SHA-256 of the file).
        digest: String,
        /// Trace lines.
        events: u64,
    },
    /// The traces differ.
    Diverged(Divergence),
}

/// The first trace line that differs between two runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based line number in the trace.
    pub line: u64,
    /// The line's `seq`, when the lines carry one.
    pub seq: Option<u64>,
    /// Virtual time (`t`) of the first run's line, or of the second's when the first ended.
    pub time: Option<String>,
    /// Component of the first run's line (or the second's).
    pub component: Option<String>,
    /// The first run's line (`None`: its trace ended before).
    pub first: Option<String>,
    /// The second run's line (`None`: its trace ended before).
    pub second: Option<String>,
}

impl fmt::Display for Determinism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Determinism::Deterministic { digest, events } => {
                write!(f, "deterministic: {digest} ({events} trace events)")
            }
            Determinism::Diverged(d) => {
                write!(f, "NOT deterministic: trace line {}", d.line)?;
                if let Some(seq) = d.seq {
                    write!(f, " (seq {seq}")?;
                    if let Some(t) = &d.time {
                        write!(f, ", t {t}")?;
                    }
                    if let Some(c) = &d.component {
                        write!(f, ", component {c}")?;
                    }
                    f.write_str(")")?;
                }
                writeln!(f, " differs")?;
                writeln!(f, "  run 1: {}", d.first.as_deref().unwrap_or("<trace ended>"))?;
                write!(f, "  run 2: {}", d.second.as_deref().unwrap_or("<trace ended>"))
            }
        }
    }
}

impl Run {
    /// Runs the scenario twice for `duration` of virtual time (outputs in `<out>/run-1` and `<out>/run-2`)
    /// and compares the traces.
    pub fn check_determinism(self, duration: Duration) -> anyhow::Result<Determinism> {
        self.check_determinism_with(duration, |_| async { Ok(()) })
    }

    /// As [`Run::check_determinism`], with a script run against each pipeline after it starts (it runs
    /// before the `duration` of virtual time).
    pub fn check_determinism_with<F, Fut>(self, duration: Duration, script: F) -> anyhow::Result<Determinism>
    where
        F: Fn(std::sync::Arc<crate::topology::Pipeline>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let out_dir = crate::topology::out_dir::prepare(&self.out)?;
        let base = self.out.clone();
        let mut digests = Vec::new();
        for i in 1..=2 {
            let run = self.clone().out(base.join(format!("run-{i}")));
            let summary = run.sim_with(|p| {
                let scripted = script(p);
                async move {
                    scripted.await?;
                    tokio::time::sleep(duration).await;
                    Ok(())
                }
            })?;
            digests.push(summary.trace);
        }
        out_dir.finish()?;
        let (a, b) = (base.join("run-1/trace.jsonl"), base.join("run-2/trace.jsonl"));
        if digests[0].digest == digests[1].digest {
            return Ok(Determinism::Deterministic {
                digest: digests[0].digest.clone(),
                events: digests[0].events,
            });
        }
        compare(&a, &b)?
            .map(Determinism::Diverged)
            .context("the digests differ but no trace line does (a trace file is missing?)")
    }
}

/// The first differing line of two trace files, if any.
pub fn compare(a: &Path, b: &Path) -> anyhow::Result<Option<Divergence>> {
    let open = |p: &Path| -> anyhow::Result<_> {
        Ok(BufReader::new(std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?)
            .lines())
    };
    let (mut la, mut lb) = (open(a)?, open(b)?);
    let mut n = 0u64;
    loop {
        n += 1;
        let (x, y) = (la.next().transpose()?, lb.next().transpose()?);
        if x == y {
            if x.is_none() {
                return Ok(None);
            }
            continue;
        }
        let parsed = |l: &Option<String>| l.as_deref().and_then(|l| serde_json::from_str::<Value>(l).ok());
        let (pa, pb) = (parsed(&x), parsed(&y));
        let field = |k: &str| {
            pa.as_ref().and_then(|v| v.get(k)).or_else(|| pb.as_ref().and_then(|v| v.get(k))).cloned()
        };
        return Ok(Some(Divergence {
            line: n,
            seq: field("seq").and_then(|v| v.as_u64()),
            time: field("t").and_then(|v| v.as_str().map(str::to_string)),
            component: field("component").and_then(|v| v.as_str().map(str::to_string)),
            first: x,
            second: y,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_the_first_differing_line_or_a_shorter_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let line =
            |seq: u64, c: &str| format!("{{\"seq\":{seq},\"t\":\"00:00:0{seq}\",\"component\":\"{c}\"}}\n");
        std::fs::write(&a, format!("{}{}{}", line(1, "X"), line(2, "Y"), line(3, "Z"))).unwrap();
        std::fs::write(&b, format!("{}{}{}", line(1, "X"), line(2, "W"), line(3, "Z"))).unwrap();
        let d = compare(&a, &b).unwrap().unwrap();
        assert_eq!((d.line, d.seq, d.component.as_deref()), (2, Some(2), Some("Y")));
        assert!(d.second.unwrap().contains("\"W\""));
        std::fs::write(&b, format!("{}{}", line(1, "X"), line(2, "Y"))).unwrap();
        let d = compare(&a, &b).unwrap().unwrap();
        assert_eq!((d.line, d.second), (3, None));
        std::fs::write(&b, std::fs::read(&a).unwrap()).unwrap();
        assert_eq!(compare(&a, &b).unwrap(), None);
    }
}
