//! A Task node's work, after Chaos Mesh's `pkg/workflow/task`: run it, collect its exit code and stdout
//! (trailing whitespace trimmed, at most [`MAX_STDOUT`] bytes kept), and select the conditional branches
//! whose expression holds over `exitCode` and `stdout` (an empty expression always does). Chaos Mesh
//! evaluates antonmedv/expr; chaoslab evaluates the same comparisons and logic (`==`, `!=`, `<`, `&&`,
//! `||`, `!`, string and integer literals) with `evalexpr`.

use std::process::Stdio;

use evalexpr::{ContextWithMutableVariables as _, DefaultNumericTypes, HashMapContext, Value};
use hyper::Method;
use tokio::io::AsyncReadExt as _;
use tokio_util::sync::CancellationToken;

use super::{Ctl, ObjectId};
use crate::mesh::plan::{Branch, HttpProbe, TaskAction};
use crate::topology::RunMode;

/// Bytes of a task's stdout kept.
pub const MAX_STDOUT: usize = 1 << 20;

/// What a task left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TaskResult {
    pub exit_code: i64,
    pub stdout: String,
}

impl Ctl {
    /// Runs a task; `None` when it could not run (a `Failed` event says why) or was stopped.
    pub(super) async fn run_task(
        &self,
        id: &ObjectId,
        action: &TaskAction,
        stop: &CancellationToken,
    ) -> Option<TaskResult> {
        let work = async {
            match action {
                TaskAction::Builtin(argv) => self.builtin(id, argv).await,
                TaskAction::Process { program, args, env } => self.process(id, program, args, env).await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            r = work => r,
        }
    }

    async fn builtin(&self, id: &ObjectId, argv: &[String]) -> Option<TaskResult> {
        let (name, rest) = argv.split_first()?;
        let (exit_code, stdout) = match name.as_str() {
            "echo" => (0, rest.join(" ")),
            "http-get" => {
                let probe = HttpProbe {
                    url: rest.first()?.clone(),
                    method: "GET".into(),
                    headers: Vec::new(),
                    body: None,
                    codes: (200, 299),
                };
                let (client, path) = self.client(id, &probe)?;
                match client.send(Method::GET, &path, None).await {
                    Ok(r) => {
                        let body = &r.body[..r.body.len().min(MAX_STDOUT)];
                        (i64::from(!r.status.is_success()), String::from_utf8_lossy(body).into_owned())
                    }
                    Err(e) => (1, e.to_string()),
                }
            }
            "query" => match crate::monitoring::query_value(&self.p, rest.first()?) {
                Ok(v) => (
                    0,
                    match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    },
                ),
                Err(e) => (1, e),
            },
            _ => return None,
        };
        Some(TaskResult { exit_code, stdout: stdout.trim_end().to_string() })
    }

    async fn process(
        &self,
        id: &ObjectId,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Option<TaskResult> {
        if self.p.mode == RunMode::Sim {
            let message =
                format!("{program}: sim mode runs no processes; use a built-in task (image: chaoslab)");
            self.warn(id, "Failed", message, vec![]);
            return None;
        }
        // The executable the allow-list resolved at the start, by its canonical path.
        let Some(path) = self.engine().process_allow().permits(program) else {
            let message = format!("{program} is not on the allow-list (--allow-process)");
            self.warn(id, "Failed", message, vec![]);
            return None;
        };
        let mut command = tokio::process::Command::new(&path);
        command
            .args(args)
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command.kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.warn(id, "Failed", format!("cannot start {program}: {e}"), vec![]);
                return None;
            }
        };
        let mut stdout = Vec::new();
        if let Some(out) = child.stdout.take() {
            // Read at most MAX_STDOUT bytes; the rest is drained and dropped so the child never blocks.
            let mut out = out;
            let mut buf = [0u8; 8192];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = MAX_STDOUT.saturating_sub(stdout.len());
                        stdout.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        }
        let status = child.wait().await.ok()?;
        let exit_code = status.code().map_or(-1, i64::from);
        Some(TaskResult { exit_code, stdout: String::from_utf8_lossy(&stdout).trim_end().to_string() })
    }

    /// The branches whose expression holds (an expression that fails to evaluate does not; a warning says
    /// why).
    pub(super) fn select_branches(
        &self,
        id: &ObjectId,
        branches: &[Branch],
        result: &TaskResult,
    ) -> Vec<usize> {
        let mut context = HashMapContext::<DefaultNumericTypes>::new();
        let set = context
            .set_value("exitCode".into(), Value::Int(result.exit_code))
            .and_then(|()| context.set_value("stdout".into(), Value::String(result.stdout.clone())));
        if let Err(e) = set {
            self.warn(id, "Failed", format!("cannot evaluate branches: {e}"), vec![]);
            return Vec::new();
        }
        let mut out = Vec::new();
        for b in branches {
            let holds = match &b.expression {
                None => true,
                Some(tree) => match tree.eval_boolean_with_context(&context) {
                    Ok(v) => v,
                    Err(e) => {
                        let text = b.text.as_deref().unwrap_or_default();
                        self.warn(id, "Failed", format!("branch {text:?}: {e}"), vec![]);
                        false
                    }
                },
            };
            if holds {
                out.push(b.target);
            }
        }
        out
    }
}
