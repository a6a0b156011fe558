//! One run's timeline, the same on a sim pipeline and on a live target: warm up, wait for the wizard's
//! "good time" when the chaos has a cron schedule, create the chaos (Chaos Mesh objects, the fault
//! schedule's faults as they fall due, the Chaos Toolkit experiments beside), sample every series at its
//! interval until `(number + 2) × offset` after the chaos's start, end the chaos and collect the ground truth.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Timelike as _;
use tokio_util::sync::CancellationToken;

use super::detect::Window;
use super::series::Series;
use super::spec::Capture;
use super::target::{ChaosDoc, Target};
use crate::chaos::experiment::{RunOptions, VarOverrides};
use crate::chaos::faults::FaultRequest;

/// At most this many sampling problems are kept per run (a broken query fails at every sample).
const MAX_WARNINGS: usize = 20;

/// A fault of the schedule, with the point's values in.
#[derive(Clone, Debug)]
pub struct Firing {
    /// After the chaos's start.
    pub at: Duration,
    /// Repeated this often until the capture ends.
    pub every: Option<Duration>,
    /// What is applied.
    pub request: FaultRequest,
}

/// What one run does.
pub struct Plan {
    /// Chaos Mesh documents, created at the chaos's start.
    pub docs: Vec<ChaosDoc>,
    /// Catalogue faults at times after the chaos's start.
    pub schedule: Vec<Firing>,
    /// Chaos Toolkit experiments, run one after another from the chaos's start.
    pub experiments: Vec<serde_json::Value>,
    /// The point's values as configuration overrides of the experiments.
    pub overrides: VarOverrides,
    /// The series sampled.
    pub captures: Vec<Capture>,
    /// Time before the chaos.
    pub warmup: Duration,
    /// The wizard's OFFSET.
    pub offset: Duration,
    /// The wizard's NUMBER_OF_RUNS.
    pub number: u32,
    /// Whether a document fires on a cron schedule (then the chaos waits for a good time).
    pub cron: bool,
}

/// What one run captured.
pub struct Captured {
    /// The series by name.
    pub series: BTreeMap<String, Series>,
    /// The faults injected, as windows.
    pub truth: Vec<Window>,
    /// What went wrong without failing the run.
    pub warnings: Vec<String>,
    /// The experiments' journals.
    pub journals: Vec<serde_json::Value>,
}

/// When the chaos starts, after the run's start at `now`: the warm-up, and for cron schedules the
/// wizard's wait until the next minute divisible by the offset, plus 2 s.
fn chaos_start(plan: &Plan, now: chrono::DateTime<chrono::Utc>) -> Duration {
    if !plan.cron {
        return plan.warmup;
    }
    let at = now + chrono::Duration::from_std(plan.warmup).unwrap_or_default();
    let minutes = (plan.offset.as_secs() / 60).max(1) as u32;
    let past = (at.minute() % minutes) * 60 + at.second();
    let wait = if past == 0 && at.nanosecond() == 0 { 0 } else { minutes * 60 - past };
    plan.warmup + Duration::from_secs(u64::from(wait) + 2)
}

/// The schedule's firings between the chaos's start and the capture's end, in time order.
fn firings(plan: &Plan, apply: Duration, end: Duration) -> Vec<(Duration, usize)> {
    let mut out = Vec::new();
    for (i, f) in plan.schedule.iter().enumerate() {
        let mut at = apply + f.at;
        while at < end {
            out.push((at, i));
            match f.every {
                Some(every) if !every.is_zero() => at += every,
                _ => break,
            }
        }
    }
    out.sort();
    out
}

/// Runs `plan` against `target`, from now; `cancel` ends the capture early (between two calls to the
/// target, so that nothing it applied goes unrecorded) and the chaos is ended as usual.
pub(crate) async fn run<T: Target>(target: &mut T, plan: &Plan, cancel: CancellationToken) -> Captured {
    let start = tokio::time::Instant::now();
    let started = target.now();
    let apply = chaos_start(plan, started);
    let end = apply + plan.offset * (plan.number + 2);
    let mut warnings = Vec::new();
    // Chaos Toolkit experiments run from the chaos's start, beside the capture.
    let journals: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let ctk_warnings: Arc<Mutex<Vec<String>>> = Arc::default();
    let ctk = {
        let (providers, env, clock) = (target.providers(), target.env(), target.journal_clock());
        let (journals, ctk_warnings, cancel) = (journals.clone(), ctk_warnings.clone(), cancel.clone());
        async move {
            if plan.experiments.is_empty() {
                return;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(start + apply) => {}
            }
            for raw in &plan.experiments {
                if cancel.is_cancelled() {
                    break;
                }
                let options = RunOptions::default();
                match crate::chaos::execute::prepare(raw, &providers, &options, &plan.overrides, &env) {
                    Ok((experiment, settings)) => {
                        let cancel = cancel.child_token();
                        let journal = crate::chaos::execute::run(
                            &experiment,
                            settings,
                            &providers,
                            cancel,
                            clock.clone(),
                        )
                        .await;
                        let value = serde_json::to_value(&journal).unwrap_or_default();
                        journals.lock().unwrap_or_else(PoisonError::into_inner).push(value);
                    }
                    Err(errors) => {
                        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                        ctk_warnings
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(format!("experiment not run: {}", text.join("; ")));
                    }
                }
            }
        }
    };
    let due = firings(plan, apply, end);
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    let capture = async {
        let mut next_sample: Vec<Duration> = vec![Duration::ZERO; plan.captures.len()];
        let mut next_fault = 0;
        let mut applied = false;
        loop {
            let now = start.elapsed();
            if !applied && now >= apply {
                for doc in &plan.docs {
                    if let Err(e) = target.create(doc).await {
                        warnings.push(e);
                    }
                }
                applied = true;
            }
            while let Some((at, i)) = due.get(next_fault).copied().filter(|(at, _)| now >= *at) {
                let request = &plan.schedule[i].request;
                if let Err(e) = target.apply(request).await {
                    warnings.push(format!("fault {} at {:?}: {e}", request.kind, at.saturating_sub(apply)));
                }
                next_fault += 1;
            }
            for (i, cap) in plan.captures.iter().enumerate() {
                if now < next_sample[i] {
                    continue;
                }
                let t = target.now().timestamp_millis() as f64 / 1000.0;
                match target.query(&cap.query).await {
                    Ok(Some(v)) => series.entry(cap.name.clone()).or_default().push(t, v),
                    Ok(None) => {}
                    Err(e) if warnings.len() < MAX_WARNINGS => {
                        warnings.push(format!("{} at {t}: {e}", cap.name))
                    }
                    Err(_) => {}
                }
                next_sample[i] += cap.interval;
            }
            if now >= end {
                break;
            }
            let mut wake = next_sample.iter().copied().min().unwrap_or(end).min(end);
            if !applied {
                wake = wake.min(apply);
            }
            if let Some((at, _)) = due.get(next_fault) {
                wake = wake.min(*at);
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(start + wake) => {}
            }
        }
    };
    tokio::join!(capture, ctk);
    for cap in &plan.captures {
        if !series.contains_key(&cap.name) {
            warnings.push(format!(
                "{}: {} gave no series in the whole run (a metric name misspelt?)",
                cap.name, cap.query
            ));
        }
    }
    warnings.extend(ctk_warnings.lock().unwrap_or_else(PoisonError::into_inner).drain(..));
    let journals = std::mem::take(&mut *journals.lock().unwrap_or_else(PoisonError::into_inner));
    warnings.extend(target.finish().await);
    let truth = match target.truth(started).await {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("no ground truth: {e}"));
            Vec::new()
        }
    };
    Captured { series, truth, warnings, journals }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(schedule: Vec<Firing>, cron: bool) -> Plan {
        Plan {
            docs: Vec::new(),
            schedule,
            experiments: Vec::new(),
            overrides: VarOverrides::default(),
            captures: Vec::new(),
            warmup: Duration::from_secs(60),
            offset: Duration::from_secs(120),
            number: 2,
            cron,
        }
    }

    #[test]
    fn cron_chaos_waits_for_the_next_good_minute_and_repeating_faults_stop_at_the_end() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        // 10:00:30 + 1 min warm-up = 10:01:30; the next even minute is 10:02:00, + 2 s.
        assert_eq!(chaos_start(&plan(Vec::new(), true), at("2024-01-01T10:00:30Z")), Duration::from_secs(92));
        assert_eq!(
            chaos_start(&plan(Vec::new(), false), at("2024-01-01T10:00:30Z")),
            Duration::from_secs(60)
        );
        let kill = |at: u64, every: Option<u64>| Firing {
            at: Duration::from_secs(at),
            every: every.map(Duration::from_secs),
            request: FaultRequest { kind: "process-kill".into(), ..FaultRequest::default() },
        };
        let p = plan(vec![kill(30, Some(120)), kill(0, None)], false);
        let fired: Vec<(u64, usize)> = firings(&p, Duration::from_secs(60), Duration::from_secs(540))
            .iter()
            .map(|(d, i)| (d.as_secs(), *i))
            .collect();
        assert_eq!(fired, [(60, 1), (90, 0), (210, 0), (330, 0), (450, 0)]);
    }
}
