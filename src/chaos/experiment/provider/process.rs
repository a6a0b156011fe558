//! The `process` provider: run an executable, return `{status, stdout, stderr}`.
//!
//! Semantics of chaostoolkit-lib's `provider/process.py`: `path` is looked up on `PATH` (`~` expands
//! to the home directory); a list of arguments passes each item (as Python's `str()`, dropping `None`
//! and `""`); a string of arguments runs `"<path> <arguments>"` through the shell; a mapping (a
//! deprecated form) is flattened to `key value …`. A non-zero exit is *not* a failure, only a
//! warning outside the steady-state hypothesis; exceeding `timeout` is. The child is killed when the
//! run stops waiting for it (timeout or interruption).
//!
//! A real process runs in real time: in sim mode (paused clock) a `timeout` would expire at once, so
//! process activities belong to live runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use super::ActivityError;
use crate::chaos::experiment::model::ProcessProvider;
use crate::chaos::experiment::pyvalue::py_str;
use crate::chaos::experiment::substitute::{Bindings, substitute};

/// Runs the process; `in_hypothesis` silences the non-zero-exit warning.
pub async fn run(
    provider: &ProcessProvider,
    in_hypothesis: bool,
    bindings: &Bindings<'_>,
) -> Result<Value, ActivityError> {
    let path = which(&provider.path)
        .ok_or_else(|| ActivityError::failed(format!("path '{}' cannot be found", provider.path)))?;
    let arguments = substitute(&provider.arguments, bindings);
    let mut command = match &arguments {
        Value::String(line) => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(format!("{} {}", path.display(), line));
            c
        }
        other => {
            let mut c = tokio::process::Command::new(&path);
            c.args(argument_list(other));
            c
        }
    };
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    tracing::debug!(command = ?command.as_std(), "running process activity");

    let child = command
        .spawn()
        .map_err(|e| ActivityError::failed(format!("failed to start '{}': {e}", path.display())))?;
    let waited = match provider.timeout {
        Some(seconds) => {
            let limit = Duration::try_from_secs_f64(seconds)
                .map_err(|e| ActivityError::failed(format!("invalid process timeout {seconds}: {e}")))?;
            tokio::time::timeout(limit, child.wait_with_output())
                .await
                .map_err(|_| ActivityError::TimedOut { what: "process activity", seconds })?
        }
        None => child.wait_with_output().await,
    };
    let output = waited.map_err(|e| ActivityError::failed(format!("process activity failed: {e}")))?;

    let status = exit_code(&output.status);
    if !in_hypothesis && status > 0 {
        tracing::warn!(
            status,
            "This process returned a non-zero exit code. This may indicate some error and not what you \
             expected. Please have a look at the logs."
        );
    }
    Ok(json!({
        "status": status,
        "stdout": String::from_utf8_lossy(&output.stdout),
        "stderr": String::from_utf8_lossy(&output.stderr),
    }))
}

/// The argv items for a list or mapping of arguments (anything else is a single argument).
fn argument_list(arguments: &Value) -> Vec<String> {
    let items: Vec<Value> = match arguments {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map.iter().flat_map(|(k, v)| [Value::String(k.clone()), v.clone()]).collect(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    items.iter().filter(|v| !v.is_null() && v.as_str() != Some("")).map(py_str).collect()
}

/// Python's `returncode`: the exit code, or minus the signal that killed the process.
fn exit_code(status: &std::process::ExitStatus) -> i64 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return -i64::from(signal);
        }
    }
    status.code().map_or(-1, i64::from)
}

/// `shutil.which`: an executable path, found directly when it names a directory, else on `PATH`.
/// The executables experiments submitted over HTTP may run (`--allow-process`), resolved once, at the
/// start, to canonical absolute paths: an `echo` elsewhere on disk is not the `/usr/bin/echo` that was
/// allowed, whatever it is called.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessAllow(Vec<PathBuf>);

impl ProcessAllow {
    /// Resolves names (looked up on `PATH`) and paths; one that is not an executable is an error.
    pub fn resolve(names: &[String]) -> Result<ProcessAllow, String> {
        let mut paths = Vec::new();
        for name in names {
            let path = which(name).and_then(|p| p.canonicalize().ok()).ok_or_else(|| {
                format!("--allow-process {name:?}: no such executable (on PATH, or at that path)")
            })?;
            paths.push(path);
        }
        Ok(ProcessAllow(paths))
    }

    /// The canonical path `program` runs as, when that is an allowed executable.
    pub fn permits(&self, program: &str) -> Option<PathBuf> {
        let path = which(program)?.canonicalize().ok()?;
        self.0.contains(&path).then_some(path)
    }

    /// The allowed executables.
    pub fn paths(&self) -> &[PathBuf] {
        &self.0
    }
}

/// Where `path` runs from: itself when it names a directory (`./x`, `/bin/x`, `~/x`), else the first
/// executable of that name on `PATH`.
pub fn which(path: &str) -> Option<PathBuf> {
    let expanded = expand_home(path);
    if expanded.components().count() > 1 || expanded.is_absolute() {
        return is_executable(&expanded).then_some(expanded);
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search).map(|dir| dir.join(&expanded)).find(|candidate| is_executable(candidate))
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = path.metadata() else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::model::Configuration;
    use crate::chaos::experiment::substitute::Outputs;

    fn provider(doc: Value) -> ProcessProvider {
        ProcessProvider {
            path: doc["path"].as_str().unwrap().to_owned(),
            arguments: doc.get("arguments").cloned().unwrap_or(Value::Null),
            timeout: doc.get("timeout").and_then(Value::as_f64),
        }
    }

    async fn run_with(doc: Value, config: Value) -> Result<Value, ActivityError> {
        let configuration: Configuration = config.as_object().cloned().unwrap();
        let secrets = Configuration::new();
        let outputs = Outputs::new();
        let b = Bindings { configuration: &configuration, secrets: &secrets, outputs: &outputs };
        run(&provider(doc), false, &b).await
    }

    #[tokio::test]
    async fn echo_with_a_list_of_arguments() {
        let out = run_with(
            json!({"path": "echo", "arguments": ["hello", "${who}", null, "", 3, true]}),
            json!({"who": "kafka"}),
        )
        .await
        .unwrap();
        assert_eq!(out, json!({"status": 0, "stdout": "hello kafka 3 True\n", "stderr": ""}));
    }

    #[tokio::test]
    async fn a_string_runs_through_the_shell_and_exit_codes_are_reported() {
        let out = run_with(json!({"path": "echo", "arguments": "one; echo err >&2; exit 3"}), json!({}))
            .await
            .unwrap();
        assert_eq!(out, json!({"status": 3, "stdout": "one\n", "stderr": "err\n"}));
    }

    #[tokio::test]
    async fn timeouts_and_missing_executables_fail_the_activity() {
        let err = run_with(json!({"path": "sleep", "arguments": ["5"], "timeout": 0.1}), json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, ActivityError::TimedOut { .. }), "{err}");
        let err = run_with(json!({"path": "no-such-binary-here"}), json!({})).await.unwrap_err();
        assert_eq!(err.to_string(), "path 'no-such-binary-here' cannot be found");
    }

    #[test]
    fn which_finds_executables() {
        assert!(which("sh").is_some());
        assert!(which("/bin/sh").is_some());
        assert!(which("/etc/hostname-does-not-exist").is_none());
        assert_eq!(argument_list(&json!({"-n": 1})), ["-n", "1"]);
    }
}
