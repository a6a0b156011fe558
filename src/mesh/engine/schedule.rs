//! A Schedule's controller, after Chaos Mesh's `controllers/schedule/{cron,gc}`: on every cron tick of the
//! run's calendar clock (the first one strictly after the Schedule's creation) it creates
//! `<schedule>-<n>`; under `Forbid` a tick is skipped while an earlier creation is still running
//! (`ScheduleForbid`), under `Allow` they overlap; a tick handled later than `startingDeadlineSeconds` is
//! missed (`MissedSchedule`); finished creations beyond `historyLimit` are forgotten, oldest first.
//! Deleting the Schedule deletes what it created.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use tokio::sync::watch;

use super::{BoxFuture, Ctl, ObjectId, Phase, Woke};
use crate::mesh::plan::{SchedulePlan, Spawn};

impl Ctl {
    /// Runs a Schedule until it is deleted; while paused, its ticks create nothing.
    pub(super) async fn run_schedule(
        self,
        id: ObjectId,
        plan: SchedulePlan,
        pause: watch::Receiver<bool>,
        stop: CancellationToken,
    ) {
        let clock = self.p.clock.clone();
        let mut last = clock.now();
        let mut created: Vec<ObjectId> = Vec::new();
        let mut count = 0u64;
        let mut children = Vec::new();
        loop {
            let Some(next) = plan.cron.next_after(last) else {
                self.warn(&id, "Failed", format!("{:?} has no next tick", plan.cron_text), vec![]);
                break;
            };
            let wait = (next - clock.now()).to_std().unwrap_or(Duration::ZERO);
            if Self::wait(&stop, Some(tokio::time::Instant::now() + wait), None).await == Woke::Stopped {
                break;
            }
            last = next;
            if *pause.borrow() {
                continue;
            }
            let late = (clock.now() - next).to_std().unwrap_or(Duration::ZERO);
            if let Some(deadline) = plan.starting_deadline
                && late > deadline
            {
                self.warn(
                    &id,
                    "MissedSchedule",
                    format!("missed scheduled time to start a job: {}", next.format("%Y-%m-%dT%H:%M:%SZ")),
                    vec![],
                );
                continue;
            }
            if plan.forbid
                && let Some(running) =
                    created.iter().find(|c| self.engine().phase(c).is_some_and(|p| p != Phase::Finished))
            {
                self.warn(
                    &id,
                    "ScheduleForbid",
                    format!("forbid spawning new job because: {} is still running", running.name),
                    vec![running.key()],
                );
                continue;
            }
            count += 1;
            let kind = match &plan.spawn {
                Spawn::Chaos(c) => c.kind,
                Spawn::Workflow(_) => "Workflow",
            };
            let child = id.child(kind, format!("{}-{count}", id.name));
            let (child_stop, child_pause) = self.engine().register(&child, Some((&id, &stop)), false);
            let me = self.clone();
            let child_id = child.clone();
            let future: BoxFuture = match &plan.spawn {
                Spawn::Chaos(c) => {
                    let c = (**c).clone();
                    Box::pin(me.run_chaos(child_id, c, child_pause, child_stop))
                }
                Spawn::Workflow(w) => {
                    let w = Arc::new((**w).clone());
                    Box::pin(me.run_workflow(child_id, w, child_stop))
                }
            };
            self.note(&id, "ScheduleSpawn", format!("create new object: {}", child.name), vec![child.key()]);
            children.retain(|c: &tokio::task::JoinHandle<()>| !c.is_finished());
            children.push(tokio::spawn(future));
            created.push(child);
            self.collect_garbage(&mut created, plan.history_limit);
        }
        // What it created is deleted with it (their stop tokens are children of its own).
        for child in children {
            if let Err(e) = child.await {
                tracing::warn!("a chaos created by {} failed: {e}", id.origin());
            }
        }
        self.note(&id, "Deleted", format!("deleted after creating {count} object(s)"), vec![]);
        self.engine().set_phase(&id, Phase::Finished);
    }

    /// Forgets the oldest finished creations beyond `limit` (running ones are kept).
    fn collect_garbage(&self, created: &mut Vec<ObjectId>, limit: usize) {
        while created.len() > limit {
            let finished = |c: &ObjectId| self.engine().phase(c).is_none_or(|p| p == Phase::Finished);
            let Some(pos) = created.iter().position(finished) else {
                break;
            };
            let old = created.remove(pos);
            self.engine().forget(&old);
        }
    }
}
