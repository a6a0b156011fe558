//! The journal: the JSON record of one run, with chaostoolkit-lib's keys and statuses.
//!
//! Same shape as `chaoslib.run.initialize_run_journal` fills it, so Chaos Toolkit tooling (reports,
//! `chaos verify` consumers) can read chaoslab journals: `status` is one of
//! `completed|failed|aborted|interrupted` and `deviated` is a separate boolean; `steady_states` holds
//! the `before` and `after` hypothesis runs and the `during` samples; `run` and `rollbacks` list one
//! record per activity. Times are naive UTC ISO strings as Python's `datetime.utcnow().isoformat()`
//! writes them (microseconds only when non-zero) and durations are float seconds.
//!
//! Everything time-related comes from the run's `now` function, never from the wall clock, so a run
//! in virtual time produces the same bytes every time.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::provider::ActivityError;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalStatus {
    /// The run went through (the hypothesis may still have deviated: see `deviated`).
    Completed,
    /// A steady-state probe errored, `--fail-fast` stopped the method, or (chaoslab)
    /// `--fail-on-activity-failure` saw a method activity fail.
    Failed,
    /// The engine met an unexpected problem in the method (e.g. a reference to a missing activity).
    Aborted,
    /// A control interrupted the run, or it was cancelled (SIGINT/SIGTERM).
    Interrupted,
}

impl JournalStatus {
    /// The status as written in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalStatus::Completed => "completed",
            JournalStatus::Failed => "failed",
            JournalStatus::Aborted => "aborted",
            JournalStatus::Interrupted => "interrupted",
        }
    }
}

/// Whether one activity ran without failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The provider returned.
    Succeeded,
    /// The provider failed (`ActivityFailed`).
    Failed,
}

/// Identification of the engine in the journal (`chaoslib-version`, `platform`, `node`). Fixed
/// values rather than host facts, so journals of the same run compare equal across machines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMeta {
    /// `chaoslib-version`.
    pub chaoslib_version: String,
    /// `platform`.
    pub platform: String,
    /// `node`.
    pub node: String,
}

impl Default for JournalMeta {
    fn default() -> Self {
        JournalMeta {
            chaoslib_version: format!("chaoslab-{}", env!("CARGO_PKG_VERSION")),
            platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            node: "chaoslab".to_owned(),
        }
    }
}

/// The record of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Engine version.
    #[serde(rename = "chaoslib-version")]
    pub chaoslib_version: String,
    /// Platform.
    pub platform: String,
    /// Node.
    pub node: String,
    /// A copy of the experiment (title substituted, `dry` set as the CLI sets it).
    pub experiment: Value,
    /// When the run started.
    pub start: String,
    /// How it ended.
    pub status: JournalStatus,
    /// True when the steady-state hypothesis did not hold after the method.
    pub deviated: bool,
    /// The hypothesis runs.
    pub steady_states: SteadyStates,
    /// The method's activity records, in declaration order (background ones included).
    pub run: Vec<ActivityRun>,
    /// The rollbacks' activity records.
    pub rollbacks: Vec<ActivityRun>,
    /// When the run ended.
    pub end: String,
    /// Seconds from start to end.
    pub duration: f64,
    /// ChaosIQ verification only: the hypothesis sampled throughout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurements: Option<Vec<SteadyState>>,
    /// chaoslab: the faults the run applied and the incidents each explains (time to detect), and the
    /// incidents no fault explains. Only when the target reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth: Option<serde_json::Value>,
}

/// What a secret's value becomes in a journal.
const MASK: &str = "***";

fn mask(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => {
            for secret in secrets {
                if s.contains(secret.as_str()) {
                    *s = s.replace(secret.as_str(), MASK);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| mask(x, secrets)),
        Value::Object(m) => m.values_mut().for_each(|x| mask(x, secrets)),
        _ => {}
    }
}

impl Journal {
    /// The journal as pretty JSON (what `--journal-path` gets).
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain data (strings, numbers, JSON values) cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Masks the experiment's secrets: literal values declared under `secrets` become `"***"`, and
    /// every occurrence of a secret's value — literal or read from the environment — anywhere in the
    /// journal (an activity's arguments or output) is replaced by `***`. Journals are shared and kept;
    /// secrets are not.
    pub fn redact_secrets(&mut self) {
        let mut values = Vec::new();
        if let Some(scopes) = self.experiment.get_mut("secrets").and_then(Value::as_object_mut) {
            for scope in scopes.values_mut().filter_map(Value::as_object_mut) {
                for value in scope.values_mut() {
                    match value {
                        Value::String(s) => values.push(std::mem::replace(s, MASK.to_owned())),
                        Value::Number(n) => {
                            values.push(n.to_string());
                            *value = MASK.into();
                        }
                        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("env") => {
                            if let Some(v) =
                                o.get("key").and_then(Value::as_str).and_then(|k| std::env::var(k).ok())
                            {
                                values.push(v);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        // Short values would mask ordinary text; a secret is longer than this.
        values.retain(|v| v.chars().count() >= 4);
        if values.is_empty() {
            return;
        }
        let Ok(mut whole) = serde_json::to_value(&*self) else { return };
        mask(&mut whole, &values);
        if let Ok(redacted) = serde_json::from_value(whole) {
            *self = redacted;
        }
    }

    /// Writes the journal (its secrets redacted) to `path`, readable by its owner only.
    pub fn write_private(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut redacted = self.clone();
        redacted.redact_secrets();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        // An older journal of that name may have been world-readable.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(redacted.to_json_pretty().as_bytes())
    }

    /// The final state the CLI logs: `deviated` when the hypothesis deviated, else the status.
    pub fn final_state(&self) -> &'static str {
        if self.deviated { "deviated" } else { self.status.as_str() }
    }
}

/// `steady_states`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SteadyStates {
    /// The hypothesis before the method.
    pub before: Option<SteadyState>,
    /// The hypothesis after the method.
    pub after: Option<SteadyState>,
    /// The hypothesis runs during the method.
    pub during: Vec<SteadyState>,
}

/// One run of the steady-state hypothesis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SteadyState {
    /// Every probe ran and was within tolerance.
    pub steady_state_met: bool,
    /// The probes run, up to the first that failed or missed its tolerance.
    pub probes: Vec<ActivityRun>,
}

impl SteadyState {
    /// True when the hypothesis stopped on a probe that *failed* (rather than missed its tolerance).
    pub fn probe_errored(&self) -> bool {
        self.probes.last().is_some_and(|p| p.status == RunStatus::Failed)
    }
}

/// The record of one activity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityRun {
    /// The activity as declared (a reference resolved).
    pub activity: Value,
    /// The provider's result (`null` when it failed or did not run).
    pub output: Value,
    /// When the provider was called (after the pause before).
    pub start: String,
    /// Succeeded or failed.
    pub status: RunStatus,
    /// When the provider returned (before the pause after).
    pub end: String,
    /// Seconds between the two.
    pub duration: f64,
    /// The failure, as the lib's traceback lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<Vec<String>>,
    /// Steady-state probes only: whether the output was within tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_met: Option<bool>,
    /// chaoslab: the outcome of `wait-until` pauses, by `before`/`after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<BTreeMap<String, WaitOutcome>>,
}

impl ActivityRun {
    /// The record of an activity run between `start` and `end` with `outcome`.
    pub fn new(
        activity: Value,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        outcome: Result<Value, ActivityError>,
    ) -> ActivityRun {
        let (output, status, exception) = match outcome {
            Ok(v) => (v, RunStatus::Succeeded, None),
            Err(e) => (Value::Null, RunStatus::Failed, Some(e.exception_lines())),
        };
        ActivityRun {
            activity,
            output,
            start: iso_time(start),
            status,
            end: iso_time(end),
            duration: seconds_between(start, end),
            exception,
            tolerance_met: None,
            wait_until: None,
        }
    }

    /// The activity's `name`.
    pub fn name(&self) -> &str {
        self.activity.get("name").and_then(Value::as_str).unwrap_or_default()
    }
}

/// What a `wait-until` pause did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitOutcome {
    /// The tolerance held before the timeout.
    pub met: bool,
    /// How many times the probe ran.
    pub attempts: u32,
    /// Seconds spent waiting.
    pub waited: f64,
}

/// Python's `datetime.utcnow().isoformat()`: `2024-08-14T05:38:58.922008`, or without the fraction
/// when the microseconds are zero.
pub fn iso_time(t: DateTime<Utc>) -> String {
    let naive = t.naive_utc();
    if naive.nanosecond() / 1_000 == 0 {
        naive.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        naive.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// `(end - start).total_seconds()`: microsecond resolution, as a float.
pub fn seconds_between(start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    let micros = (end - start).num_microseconds().unwrap_or(i64::MAX);
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    #[test]
    fn times_look_like_python_isoformat() {
        let t = Utc.with_ymd_and_hms(2024, 8, 14, 5, 38, 58).unwrap();
        assert_eq!(iso_time(t), "2024-08-14T05:38:58");
        let t2 = t + chrono::Duration::microseconds(922_008);
        assert_eq!(iso_time(t2), "2024-08-14T05:38:58.922008");
        assert_eq!(seconds_between(t, t2), 0.922008);
        assert_eq!(seconds_between(t, t + chrono::Duration::seconds(120)), 120.0);
    }

    #[test]
    fn run_records_carry_the_lib_keys() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let ok = ActivityRun::new(json!({"name": "a"}), t, t, Ok(json!(true)));
        let v = serde_json::to_value(&ok).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["activity", "output", "start", "status", "end", "duration"]);
        assert_eq!(v["status"], "succeeded");

        let failed = ActivityRun::new(json!({"name": "b"}), t, t, Err(ActivityError::failed("boom")));
        let v = serde_json::to_value(&failed).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["output"], Value::Null);
        assert_eq!(v["exception"], json!(["chaoslib.exceptions.ActivityFailed: boom\n"]));
        assert_eq!(failed.name(), "b");
    }

    #[test]
    fn journal_round_trips_and_reports_its_final_state() {
        let journal = Journal {
            chaoslib_version: "x".into(),
            platform: "p".into(),
            node: "n".into(),
            experiment: json!({"title": "t"}),
            start: "s".into(),
            status: JournalStatus::Completed,
            deviated: true,
            steady_states: SteadyStates::default(),
            run: vec![],
            rollbacks: vec![],
            end: "e".into(),
            duration: 1.5,
            measurements: None,
            ground_truth: None,
        };
        let text = journal.to_json_pretty();
        let back: Journal = serde_json::from_str(&text).unwrap();
        assert_eq!(back, journal);
        assert_eq!(journal.final_state(), "deviated");
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "chaoslib-version",
                "platform",
                "node",
                "experiment",
                "start",
                "status",
                "deviated",
                "steady_states",
                "run",
                "rollbacks",
                "end",
                "duration"
            ]
        );
    }

    #[test]
    fn journals_on_disk_hold_no_secret_and_only_their_owner_reads_them() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        // SAFETY (test): this variable name is used by no other test.
        unsafe { std::env::set_var("CHAOSLAB_TEST_JOURNAL_TOKEN", "tok-from-the-environment") };
        let experiment = json!({"title": "t", "secrets": {"chaoslab": {
            "token": "s3cr3t-literal", "env_token": {"type": "env", "key": "CHAOSLAB_TEST_JOURNAL_TOKEN"}, "pin": 42
        }}});
        let out = json!({"headers": {"Authorization": "Bearer s3cr3t-literal"}, "echo": "tok-from-the-environment!"});
        let journal = Journal {
            chaoslib_version: "x".into(),
            platform: "p".into(),
            node: "n".into(),
            experiment,
            start: "s".into(),
            status: JournalStatus::Completed,
            deviated: false,
            steady_states: SteadyStates::default(),
            run: vec![ActivityRun::new(json!({"name": "call"}), t, t, Ok(out))],
            rollbacks: vec![],
            end: "e".into(),
            duration: 1.0,
            measurements: None,
            ground_truth: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        std::fs::write(&path, "older, world-readable").unwrap();
        journal.write_private(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in ["s3cr3t-literal", "tok-from-the-environment"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["experiment"]["secrets"]["chaoslab"]["token"], "***");
        assert_eq!(v["experiment"]["secrets"]["chaoslab"]["env_token"]["key"], "CHAOSLAB_TEST_JOURNAL_TOKEN");
        assert_eq!(v["run"][0]["output"]["headers"]["Authorization"], "Bearer ***");
        assert_eq!(v["run"][0]["output"]["echo"], "***!");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
