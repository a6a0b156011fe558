//! A Workflow's controller, after Chaos Mesh's `pkg/workflow/controllers`: the entry node starts at
//! once; Serial runs its children one after another, Parallel all at once; Suspend waits; a chaos node
//! creates its chaos and deletes it at the deadline; a Schedule node creates a Schedule and deletes it —
//! with the chaos it created — at the deadline (`syncSchedule`); a Task runs, then the conditional
//! branches its result selects; a StatusCheck checks, and aborts the workflow when it fails and says so. A node ends at its own deadline or its
//! parent's, whichever comes first (`NodeDeadlineExceed`, `ParentNodeDeadlineExceed`); a parent whose
//! deadline passes stops its children, and Serial starts no more of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::status_check::CheckOutcome;
use super::{BoxFuture, Ctl, ObjectId, Phase};
use crate::mesh::duration;
use crate::mesh::plan::{NodeBody, NodePlan, SchedulePlan, WorkflowPlan};

/// One running workflow.
struct Run {
    id: ObjectId,
    plan: Arc<WorkflowPlan>,
    /// Cancelled to abort the whole workflow (a failed status check with `abortWithStatusCheck`).
    stop: CancellationToken,
    aborted: std::sync::atomic::AtomicBool,
    /// How many instances of each template were created (for unique names).
    created: Mutex<BTreeMap<String, usize>>,
}

impl Run {
    /// `<workflow>-<template>`, then `-2`, `-3`… when a template runs again.
    fn instance_name(&self, template: &str) -> String {
        let mut created = self.created.lock().unwrap_or_else(PoisonError::into_inner);
        let n = created.entry(template.to_string()).or_insert(0);
        *n += 1;
        match *n {
            1 => format!("{}-{template}", self.id.name),
            n => format!("{}-{template}-{n}", self.id.name),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Deadline,
    Stopped,
}

async fn until(end: Option<Instant>) {
    match end {
        Some(end) => tokio::time::sleep_until(end).await,
        None => std::future::pending().await,
    }
}

impl Ctl {
    /// Runs a workflow to its end (or until it is deleted).
    pub(super) async fn run_workflow(self, id: ObjectId, plan: Arc<WorkflowPlan>, stop: CancellationToken) {
        let entry = plan.nodes[plan.entry].name.clone();
        let run = Arc::new(Run {
            id: id.clone(),
            plan,
            stop: stop.clone(),
            aborted: false.into(),
            created: Mutex::new(BTreeMap::new()),
        });
        self.note(&id, "EntryCreated", format!("entry node {entry} created"), vec![entry]);
        let entry = run.plan.entry;
        self.clone().node(run.clone(), entry, None, stop.clone()).await;
        if run.aborted.load(std::sync::atomic::Ordering::Relaxed) {
            // `WorkflowAborted` said it.
        } else if stop.is_cancelled() {
            self.note(&id, "Deleted", "the workflow was deleted before it finished", vec![]);
        } else {
            self.note(&id, "WorkflowAccomplished", "workflow accomplished", vec![]);
        }
        self.engine().set_phase(&id, Phase::Finished);
    }

    /// Runs one node; `bound` is the parent's end.
    fn node(self, run: Arc<Run>, index: usize, bound: Option<Instant>, stop: CancellationToken) -> BoxFuture {
        Box::pin(async move {
            let node = &run.plan.nodes[index];
            let own = node.deadline.map(|d| Instant::now() + d);
            let (end, by_parent) = match (own, bound) {
                (Some(o), Some(b)) if b < o => (Some(b), true),
                (Some(o), _) => (Some(o), false),
                (None, b) => (b, b.is_some()),
            };
            let node_stop = stop.child_token();
            let mut body = self.clone().body(run.clone(), index, end, node_stop.clone());
            let outcome = tokio::select! {
                biased;
                _ = stop.cancelled() => Outcome::Stopped,
                _ = until(end) => Outcome::Deadline,
                _ = &mut body => Outcome::Done,
            };
            let name = vec![node.name.clone()];
            match outcome {
                Outcome::Deadline if by_parent => self.note(
                    &run.id,
                    "ParentNodeDeadlineExceed",
                    format!("node {} ended by its parent's deadline", node.name),
                    name.clone(),
                ),
                Outcome::Deadline => self.note(
                    &run.id,
                    "NodeDeadlineExceed",
                    format!("node {} reached its deadline", node.name),
                    name.clone(),
                ),
                Outcome::Done | Outcome::Stopped => {}
            }
            if outcome != Outcome::Done {
                node_stop.cancel();
                body.await;
            }
            if outcome == Outcome::Stopped {
                return;
            }
            self.note(&run.id, "NodeAccomplished", format!("node {} accomplished", node.name), name);
        })
    }

    /// What a node does until it is done or stopped.
    fn body(self, run: Arc<Run>, index: usize, end: Option<Instant>, stop: CancellationToken) -> BoxFuture {
        Box::pin(async move {
            let node = &run.plan.nodes[index];
            let names = |children: &[usize]| -> Vec<String> {
                children.iter().map(|&c| run.plan.nodes[c].name.clone()).collect()
            };
            match &node.body {
                NodeBody::Serial(children) => {
                    for &c in children {
                        if stop.is_cancelled() {
                            break;
                        }
                        let created = names(&[c]);
                        self.note(
                            &run.id,
                            "NodesCreated",
                            format!("child node {} created", created[0]),
                            created,
                        );
                        self.clone().node(run.clone(), c, end, stop.clone()).await;
                    }
                }
                NodeBody::Parallel(children) => {
                    let created = names(children);
                    self.note(
                        &run.id,
                        "NodesCreated",
                        format!("child nodes {} created", created.join(", ")),
                        created,
                    );
                    let all = children.iter().map(|&c| self.clone().node(run.clone(), c, end, stop.clone()));
                    futures::future::join_all(all).await;
                }
                NodeBody::Suspend => stop.cancelled().await,
                NodeBody::Chaos(plan) => {
                    let child = run.id.child(plan.kind, run.instance_name(&node.name));
                    let (child_stop, child_pause) =
                        self.engine().register(&child, Some((&run.id, &stop)), false);
                    self.note(
                        &run.id,
                        "ChaosCRCreated",
                        format!("chaos CR {} created", child.name),
                        vec![child.key()],
                    );
                    let mut plan = (**plan).clone();
                    // The node's deadline, not the chaos's duration, ends it.
                    if node.deadline.is_some() {
                        plan.duration = None;
                    }
                    self.clone().run_chaos(child.clone(), plan, child_pause, child_stop).await;
                    self.note(
                        &run.id,
                        "ChaosCRDeleted",
                        format!("chaos CR {} deleted", child.name),
                        vec![child.key()],
                    );
                }
                NodeBody::Schedule(plan) => {
                    let child = run.id.child("Schedule", run.instance_name(&node.name));
                    let (child_stop, child_pause) =
                        self.engine().register(&child, Some((&run.id, &stop)), false);
                    self.note(
                        &run.id,
                        "ChaosCRCreated",
                        format!("schedule CR {} created", child.name),
                        vec![child.key()],
                    );
                    self.warn_if_never_fires(&run, node, plan, end);
                    self.clone().run_schedule(child.clone(), (**plan).clone(), child_pause, child_stop).await;
                    self.note(
                        &run.id,
                        "ChaosCRDeleted",
                        format!("schedule CR {} deleted", child.name),
                        vec![child.key()],
                    );
                }
                NodeBody::Task { action, branches } => {
                    let name = vec![node.name.clone()];
                    self.note(&run.id, "TaskPodSpawned", format!("task {} started", node.name), name.clone());
                    let Some(result) = self.run_task(&run.id, action, &stop).await else { return };
                    let message = format!(
                        "task {} exited with {}; stdout {:?}",
                        node.name, result.exit_code, result.stdout
                    );
                    self.note(&run.id, "TaskPodPodCompleted", message, name);
                    let selected = self.select_branches(&run.id, branches, &result);
                    let chosen = names(&selected);
                    let listed = if chosen.is_empty() { "none".to_string() } else { chosen.join(", ") };
                    self.note(
                        &run.id,
                        "ConditionalBranchesSelected",
                        format!("task {} selected {listed}", node.name),
                        chosen,
                    );
                    let all = selected.iter().map(|&c| self.clone().node(run.clone(), c, end, stop.clone()));
                    futures::future::join_all(all).await;
                }
                NodeBody::StatusCheck { check, abort } => {
                    let child = run.id.child("StatusCheck", run.instance_name(&node.name));
                    let (child_stop, _) = self.engine().register(&child, Some((&run.id, &stop)), false);
                    self.note(
                        &run.id,
                        "ChaosCRCreated",
                        format!("status check CR {} created", child.name),
                        vec![child.key()],
                    );
                    let outcome = self.check(&child, check, &child_stop).await;
                    self.engine().set_phase(&child, Phase::Finished);
                    if outcome == CheckOutcome::Failed && *abort {
                        run.aborted.store(true, std::sync::atomic::Ordering::Relaxed);
                        self.warn(
                            &run.id,
                            "WorkflowAborted",
                            format!("status check {} failed and the node aborts the workflow", node.name),
                            vec![node.name.clone()],
                        );
                        run.stop.cancel();
                    }
                }
            }
        })
    }

    /// `ScheduleNeverFires` when a Schedule node ends (at `end`) before its schedule's first tick.
    fn warn_if_never_fires(&self, run: &Run, node: &NodePlan, plan: &SchedulePlan, end: Option<Instant>) {
        let now = self.p.clock.now();
        let (Some(end), Some(tick)) = (end, plan.cron.next_after(now)) else { return };
        let left = end.saturating_duration_since(Instant::now());
        let Ok(ends) = chrono::Duration::from_std(left).map(|l| now + l) else { return };
        if ends < tick {
            let message = format!(
                "node {} ({}) ends at {} (after {}), before its schedule's first tick at {}: it creates nothing",
                node.name,
                node.place,
                ends.format("%H:%M:%S"),
                duration::format(left),
                tick.format("%H:%M:%S"),
            );
            self.warn(&run.id, "ScheduleNeverFires", message, vec![node.name.clone()]);
        }
    }
}
