//! A StatusCheck, after Chaos Mesh's `controllers/statuscheck`: an HTTP request every `intervalSeconds`
//! (each with `timeoutSeconds`), a success when the status code meets the criteria. `Synchronous` ends at
//! the first threshold reached (`successThreshold` consecutive successes or `failureThreshold`
//! consecutive failures); `Continuous` runs until its duration (`DurationExceed`) unless the failure
//! threshold is reached first (`FailureThresholdExceed`). A path (`/health`) or `http://chaoslab/…` is
//! the run's own API, called in-process — in sim mode too; any other URL is a real request (live only).

use std::collections::VecDeque;

use hyper::Method;
use hyper::header::HeaderName;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ctl, ObjectId, Phase, Woke};
use crate::mesh::plan::{HttpProbe, StatusCheckPlan};
use crate::orders::http::ApiClient;
use crate::topology::RunMode;

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CheckOutcome {
    /// The success threshold was reached (Synchronous).
    Succeeded,
    /// The failure threshold was reached, or the check could not run.
    Failed,
    /// Its duration passed (Continuous).
    DurationExceed,
    /// Deleted.
    Stopped,
}

impl Ctl {
    /// A standalone StatusCheck.
    pub(super) async fn run_status_check(self, id: ObjectId, plan: StatusCheckPlan, stop: CancellationToken) {
        self.check(&id, &plan, &stop).await;
        self.engine().set_phase(&id, Phase::Finished);
    }

    /// Runs a check until it is decided, its duration passes or `stop` fires.
    pub(super) async fn check(
        &self,
        id: &ObjectId,
        plan: &StatusCheckPlan,
        stop: &CancellationToken,
    ) -> CheckOutcome {
        let Some((client, path)) = self.client(id, &plan.http) else { return CheckOutcome::Failed };
        let until = plan.duration.map(|d| Instant::now() + d);
        let headers: Vec<(HeaderName, String)> = plan
            .http
            .headers
            .iter()
            .filter_map(|(n, v)| HeaderName::from_bytes(n.as_bytes()).ok().map(|n| (n, v.clone())))
            .collect();
        let method = if plan.http.method == "POST" { Method::POST } else { Method::GET };
        let mut records: VecDeque<bool> = VecDeque::new();
        let (mut successes, mut failures) = (0u32, 0u32);
        loop {
            let call = client.send_with_headers(
                method.clone(),
                &path,
                plan.http.body.clone().map(String::into_bytes),
                &headers,
            );
            let result = tokio::select! {
                biased;
                _ = stop.cancelled() => return CheckOutcome::Stopped,
                r = tokio::time::timeout(plan.timeout, call) => r,
            };
            let (ok, what) = match result {
                Ok(Ok(r)) => {
                    let code = r.status.as_u16();
                    ((plan.http.codes.0..=plan.http.codes.1).contains(&code), format!("status {code}"))
                }
                Ok(Err(e)) => (false, e.to_string()),
                Err(_) => (false, format!("no answer within {}s", plan.timeout.as_secs())),
            };
            if records.len() == plan.history_limit {
                records.pop_front();
            }
            records.push_back(ok);
            if ok {
                successes += 1;
                failures = 0;
            } else {
                if failures == 0 {
                    let message = format!("{} {}: {what}", plan.http.method, plan.http.url);
                    self.warn(id, "StatusCheckFailing", message, vec![]);
                }
                failures += 1;
                successes = 0;
            }
            let summary = || {
                let good = records.iter().filter(|r| **r).count();
                format!("{good} of the last {} records succeeded", records.len())
            };
            if failures >= plan.failure_threshold {
                let message = format!("{failures} consecutive failures ({what}); {}", summary());
                self.warn(id, "FailureThresholdExceed", message, vec![]);
                return CheckOutcome::Failed;
            }
            if !plan.continuous && successes >= plan.success_threshold {
                let message = format!("{successes} consecutive successes; {}", summary());
                self.note(id, "SuccessThresholdExceed", message, vec![]);
                return CheckOutcome::Succeeded;
            }
            let next = Instant::now() + plan.interval;
            let (wake, at_end) = match until {
                Some(end) if end <= next => (end, true),
                _ => (next, false),
            };
            match Self::wait(stop, Some(wake), None).await {
                Woke::Stopped => return CheckOutcome::Stopped,
                Woke::TimeUp if at_end => {
                    self.note(id, "DurationExceed", format!("duration over; {}", summary()), vec![]);
                    return CheckOutcome::DurationExceed;
                }
                Woke::TimeUp | Woke::PauseChanged => {}
            }
        }
    }

    /// The client and path for a probe: in-process for the run's own API, a real client otherwise (live).
    pub(super) fn client(&self, id: &ObjectId, probe: &HttpProbe) -> Option<(ApiClient, String)> {
        if let Some(path) = probe.own_path() {
            return Some((ApiClient::InProcess(crate::api::router(self.p.clone())), path));
        }
        if self.p.mode == RunMode::Sim {
            let message = format!(
                "{}: sim mode opens no sockets; use chaoslab's own API (a path such as /health) instead",
                probe.url
            );
            self.warn(id, "Failed", message, vec![]);
            return None;
        }
        let split = probe.url.parse::<hyper::Uri>().ok().and_then(|uri| {
            let base = format!("{}://{}", uri.scheme_str()?, uri.authority()?);
            let path = uri.path_and_query().map_or("/".to_string(), |p| p.to_string());
            Some((base, path))
        });
        let client = split.and_then(|(base, path)| {
            ApiClient::remote(&base, std::time::Duration::from_secs(3600)).ok().map(|c| (c, path))
        });
        if client.is_none() {
            self.warn(id, "Failed", format!("{}: not a usable URL", probe.url), vec![]);
        }
        client
    }
}
