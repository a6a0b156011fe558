//! The local execution store: every Chaos Toolkit experiment, Chaos Mesh run and campaign run — from the
//! command line or over HTTP — kept with its journal, its outcome, its ground truth, its resilience score
//! and the command that reproduces it. It is the local stand-in for ChaosIQ's "publish experiments and
//! executions"; `chaoslab experiment publish JOURNAL` adds a run made elsewhere (the real `chaos` CLI, say).
//!
//! One SQLite file (`executions.db`): `$CHAOSLAB_STORE`, else `$CHAOSLAB_HOME/executions.db`, else
//! `$XDG_DATA_HOME/chaoslab/executions.db`, else `~/.local/share/chaoslab/executions.db`. A store that
//! cannot be opened or written never fails the run it records: the run says so and goes on.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

/// What kind of run an execution is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Chaos Toolkit experiment (its journal).
    Experiment,
    /// A Chaos Mesh file run (its objects, events and faults).
    Mesh,
    /// One run of a campaign.
    Campaign,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Experiment => "experiment",
            Kind::Mesh => "mesh",
            Kind::Campaign => "campaign",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "mesh" => Kind::Mesh,
            "campaign" => Kind::Campaign,
            _ => Kind::Experiment,
        }
    }
}

/// One run, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Execution {
    /// Store-assigned, increasing.
    pub id: i64,
    /// Experiment, Chaos Mesh or campaign run.
    pub kind: Kind,
    /// The experiment's title, the file, or the campaign run's id.
    pub title: String,
    /// `completed`, `failed`, `aborted`, `interrupted`, … (the journal's status).
    pub status: String,
    /// Whether it passed: completed without deviating (experiments), or as its kind decides.
    pub passed: Option<bool>,
    /// When it started (as the journal says).
    pub started: String,
    /// When it ended.
    pub ended: Option<String>,
    /// `cli`, `http` or `publish`.
    pub source: String,
    /// The command that reproduces it.
    pub command: String,
    /// Where it ran (an output directory, a target URL, a journal file).
    pub origin: String,
    /// Resilience score in percent, when there is one.
    pub resilience: Option<f64>,
    /// Which faults caused which incidents, when known.
    pub ground_truth: Option<Value>,
    /// The journal (or the run's record), whole.
    pub journal: Value,
}

/// The store.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    passed INTEGER,
    started TEXT NOT NULL,
    ended TEXT,
    source TEXT NOT NULL,
    command TEXT NOT NULL,
    origin TEXT NOT NULL,
    resilience REAL,
    ground_truth TEXT,
    journal TEXT NOT NULL
)";

/// Most executions one listing returns.
pub const MAX_LIST: usize = 1000;

impl Store {
    /// Opens (or creates) the store at `path`, creating its directory.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA).with_context(|| format!("{}: not an execution store", path.display()))?;
        Ok(Store { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    /// Where the store lives when nobody says (see the module docs); `None` without any home directory.
    pub fn default_path() -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        var("CHAOSLAB_STORE")
            .or_else(|| var("CHAOSLAB_HOME").map(|h| h.join("executions.db")))
            .or_else(|| var("XDG_DATA_HOME").map(|d| d.join("chaoslab/executions.db")))
            .or_else(|| var("HOME").map(|h| h.join(".local/share/chaoslab/executions.db")))
    }

    /// The store at [`Store::default_path`]; `None` (after a warning) when it cannot be opened.
    pub fn open_default() -> Option<Store> {
        let path = Store::default_path()?;
        match Store::open(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("the execution store is not available: {e:#}");
                None
            }
        }
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `e` (its `id` is ignored) and returns the id it got.
    pub fn add(&self, e: &Execution) -> anyhow::Result<i64> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO executions (kind, title, status, passed, started, ended, source, command, origin,
                                     resilience, ground_truth, journal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                e.kind.as_str(),
                e.title,
                e.status,
                e.passed,
                e.started,
                e.ended,
                e.source,
                e.command,
                e.origin,
                e.resilience,
                e.ground_truth.as_ref().map(Value::to_string),
                e.journal.to_string(),
            ],
        )
        .with_context(|| format!("cannot record the run in {}", self.path.display()))?;
        Ok(conn.last_insert_rowid())
    }

    /// [`Store::add`], logging instead of failing: a run is never lost for want of its record.
    pub fn record(&self, e: &Execution) -> Option<i64> {
        match self.add(e) {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!("{err:#}");
                None
            }
        }
    }

    /// Sets how an execution ended: its status, outcome, end, ground truth and record.
    pub fn finish(&self, id: i64, e: &Execution) -> anyhow::Result<()> {
        self.lock()
            .execute(
                "UPDATE executions SET status = ?2, passed = ?3, ended = ?4, resilience = ?5, ground_truth = ?6,
                 journal = ?7 WHERE id = ?1",
                params![
                    id,
                    e.status,
                    e.passed,
                    e.ended,
                    e.resilience,
                    e.ground_truth.as_ref().map(Value::to_string),
                    e.journal.to_string()
                ],
            )
            .with_context(|| format!("cannot update run {id} in {}", self.path.display()))?;
        Ok(())
    }

    /// The newest executions first, at most `limit` (journals left out: [`Store::get`] has them).
    pub fn list(&self, limit: usize) -> anyhow::Result<Vec<Execution>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, kind, title, status, passed, started, ended, source, command, origin, resilience,
                    ground_truth, 'null' FROM executions ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit.min(MAX_LIST) as i64], row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// One execution, whole.
    pub fn get(&self, id: i64) -> anyhow::Result<Option<Execution>> {
        let conn = self.lock();
        let found = conn
            .query_row(
                "SELECT id, kind, title, status, passed, started, ended, source, command, origin, resilience,
                        ground_truth, journal FROM executions WHERE id = ?1",
                params![id],
                row,
            )
            .optional()?;
        Ok(found)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Execution> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(Execution {
        id: r.get(0)?,
        kind: Kind::parse(&r.get::<_, String>(1)?),
        title: r.get(2)?,
        status: r.get(3)?,
        passed: r.get(4)?,
        started: r.get(5)?,
        ended: r.get(6)?,
        source: r.get(7)?,
        command: r.get(8)?,
        origin: r.get(9)?,
        resilience: r.get(10)?,
        ground_truth: json(r.get(11)?),
        journal: json(Some(r.get(12)?)).unwrap_or(Value::Null),
    })
}

/// A Chaos Toolkit journal (chaoslab's, or the real `chaos` CLI's) as an execution.
///
/// It passed when it completed without deviating. Its resilience score is the share of its steady-state
/// probe runs that met their tolerance — before, during and after the method, as Litmus scores probes —
/// when it has any.
pub fn from_journal(journal: &Value, source: &str, command: &str, origin: &str) -> anyhow::Result<Execution> {
    let status = journal.get("status").and_then(Value::as_str).context("the journal has no \"status\"")?;
    let experiment = journal.get("experiment").context("the journal has no \"experiment\"")?;
    let deviated = journal.get("deviated").and_then(Value::as_bool).unwrap_or(false);
    let states = journal.get("steady_states");
    let during = states.and_then(|s| s.get("during")).and_then(Value::as_array).into_iter().flatten();
    let probes: Vec<bool> = ["before", "after"]
        .iter()
        .filter_map(|phase| states.and_then(|s| s.get(*phase)))
        .chain(during)
        .filter_map(|phase| phase.get("probes").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("tolerance_met").and_then(Value::as_bool))
        .collect();
    let resilience = (!probes.is_empty())
        .then(|| 100.0 * probes.iter().filter(|met| **met).count() as f64 / probes.len() as f64);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    Ok(Execution {
        id: 0,
        kind: Kind::Experiment,
        title: text(experiment.get("title")).unwrap_or_default(),
        status: status.to_owned(),
        passed: Some(status == "completed" && !deviated),
        started: text(journal.get("start")).unwrap_or_default(),
        ended: text(journal.get("end")),
        source: source.to_owned(),
        command: command.to_owned(),
        origin: origin.to_owned(),
        resilience,
        ground_truth: journal.get("ground_truth").filter(|g| !g.is_null()).cloned(),
        journal: journal.clone(),
    })
}

/// The command line of this process, as a shell would take it back (`chaoslab …`).
pub fn this_command() -> String {
    let argv: Vec<String> = std::iter::once("chaoslab".to_owned()).chain(std::env::args().skip(1)).collect();
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn journal(status: &str, deviated: bool) -> Value {
        json!({
            "experiment": {"title": "orders survive a broker loss"},
            "status": status, "deviated": deviated,
            "start": "2020-02-21T21:00:10.000000", "end": "2020-02-21T21:01:10.000000",
            "steady_states": {
                "before": {"steady_state_met": true, "probes": [{"tolerance_met": true}, {"tolerance_met": true}]},
                "after": {"steady_state_met": false, "probes": [{"tolerance_met": true}, {"tolerance_met": false}]}
            },
            "ground_truth": {"faults": [], "unexplained": []}
        })
    }

    #[test]
    fn journals_are_kept_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("deep/executions.db")).unwrap();
        let first = from_journal(&journal("completed", true), "cli", "chaoslab experiment run x.json", "out")
            .unwrap();
        assert_eq!(first.passed, Some(false), "a deviated run did not pass");
        assert_eq!(first.resilience, Some(75.0), "3 of 4 probe runs met their tolerance");
        let a = store.add(&first).unwrap();
        let second =
            from_journal(&journal("completed", false), "publish", "chaos run x.json", "j.json").unwrap();
        let b = store.add(&second).unwrap();
        assert!(b > a);
        let list = store.list(10).unwrap();
        assert_eq!(list.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b, a]);
        assert_eq!(list[0].journal, Value::Null, "listings leave the journals out");
        let got = store.get(a).unwrap().unwrap();
        assert_eq!(got.journal["experiment"]["title"], "orders survive a broker loss");
        assert_eq!(got.ground_truth, Some(json!({"faults": [], "unexplained": []})));
        assert_eq!((got.source.as_str(), got.kind), ("cli", Kind::Experiment));
        assert_eq!(store.get(9999).unwrap(), None);
        // Reopened, it still has them.
        drop(store);
        let again = Store::open(&dir.path().join("deep/executions.db")).unwrap();
        assert_eq!(again.list(10).unwrap().len(), 2);
    }

    #[test]
    fn a_document_that_is_not_a_journal_is_named() {
        let err = from_journal(&json!({"title": "x"}), "publish", "", "").unwrap_err();
        assert!(err.to_string().contains("status"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("x.db");
        std::fs::write(&bad, "not sqlite at all, just text that is long enough to be read as a header")
            .unwrap();
        assert!(Store::open(&bad).is_err());
    }
}
