//! Schedules, workflows (templates, deadlines, Task branches) and status checks compiled.

use std::time::Duration;

use super::{
    BUILTIN_TASKS, Branch, Cx, HttpProbe, NodeBody, NodePlan, SchedulePlan, Spawn, StatusCheckPlan,
    TaskAction, WorkflowPlan, cycle,
};
use crate::config::KeyPath;
use crate::mesh::cron::Cron;
use crate::mesh::duration;
use crate::mesh::schema::workflow::Template;
use crate::mesh::schema::{ChaosSpec, ScheduleSpec, WorkflowSpec};

impl Cx<'_, '_> {
    pub(super) fn schedule(&mut self, s: &ScheduleSpec, at: &KeyPath, top: bool) -> Option<SchedulePlan> {
        let cron = match Cron::parse(&s.schedule) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(at.key("schedule"), e);
                None
            }
        };
        let starting_deadline = match s.starting_deadline_seconds {
            None => None,
            Some(n) if n >= 0 => Some(Duration::from_secs(n as u64)),
            Some(n) => {
                self.error(at.key("startingDeadlineSeconds"), format!("{n} is negative"));
                None
            }
        };
        let forbid = match s.concurrency_policy.as_deref() {
            None | Some("Forbid") => true,
            Some("Allow") => false,
            Some(other) => {
                self.error(at.key("concurrencyPolicy"), format!("{other:?} is not Forbid or Allow"));
                true
            }
        };
        let history_limit = match s.history_limit {
            None => 1,
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                self.error(at.key("historyLimit"), format!("{n} is below 1"));
                1
            }
        };
        for key in s.unsupported() {
            self.error(
                at.key(key),
                "this chaos kind acts on what one process does not have; it is not supported",
            );
        }
        let embedded = s.embedded();
        let mut keys: Vec<&str> = embedded.iter().map(|(k, _)| *k).collect();
        if s.workflow.is_some() {
            keys.push("workflow");
        }
        let kind = match &s.kind {
            Some(kind) => kind.clone(),
            None => {
                match keys.as_slice() {
                    [one] => {
                        let kind = if *one == "workflow" {
                            "Workflow".to_string()
                        } else {
                            embedded[0].1.kind().to_string()
                        };
                        self.warning(
                        at.key("type"),
                        format!("missing: Chaos Mesh's CRD requires `type`; chaoslab takes {kind} from `{one}`"),
                    );
                        kind
                    }
                    _ => {
                        self.error(
                            at.key("type"),
                            "required: the kind to create (PodChaos, NetworkChaos, …, Workflow)",
                        );
                        return None;
                    }
                }
            }
        };
        let wanted = if kind == "Workflow" {
            "workflow"
        } else {
            match crate::mesh::schema::chaos::embed_key(&kind) {
                Some(k) => k,
                None => {
                    self.error(at.key("type"), format!("{kind:?} is not a kind a Schedule can create"));
                    return None;
                }
            }
        };
        for key in &keys {
            if *key != wanted {
                self.error(at.key(*key), format!("type is {kind}: `{key}` does not belong here"));
            }
        }
        let spawn = if kind == "Workflow" {
            if !top {
                self.error(
                    at.key("type"),
                    "a workflow's Schedule node cannot create a Workflow (Chaos Mesh: ChaosOnlyScheduleSpec)",
                );
                return None;
            }
            match &s.workflow {
                Some(w) => Spawn::Workflow(Box::new(self.workflow(w, &at.key("workflow"))?)),
                None => {
                    self.error(at.key("workflow"), "type Workflow needs `workflow`");
                    return None;
                }
            }
        } else {
            match embedded.iter().find(|(k, _)| *k == wanted) {
                Some((k, spec)) => Spawn::Chaos(Box::new(self.chaos(spec, &at.key(*k), None)?)),
                None => {
                    self.error(at.key(wanted), format!("type {kind} needs `{wanted}`"));
                    return None;
                }
            }
        };
        Some(SchedulePlan {
            cron: cron?,
            cron_text: s.schedule.clone(),
            forbid,
            starting_deadline,
            history_limit,
            spawn,
        })
    }

    pub(super) fn workflow(&mut self, w: &WorkflowSpec, at: &KeyPath) -> Option<WorkflowPlan> {
        let templates = at.key("templates");
        let mut index = std::collections::BTreeMap::new();
        for (i, t) in w.templates.iter().enumerate() {
            if let Some(first) = index.insert(t.name.as_str(), i) {
                self.error(templates.index(i).key("name"), format!("{:?} is also template {first}", t.name));
            }
        }
        let Some(&entry) = index.get(w.entry.as_str()) else {
            self.error(at.key("entry"), format!("no template is named {:?}", w.entry));
            return None;
        };
        let mut nodes = Vec::new();
        for (i, t) in w.templates.iter().enumerate() {
            let at = templates.index(i);
            let deadline = self.duration(t.deadline.as_deref(), at.key("deadline"));
            let children = |cx: &mut Self| -> Vec<usize> {
                let mut out = Vec::new();
                for (j, c) in t.children.iter().enumerate() {
                    match index.get(c.as_str()) {
                        Some(&k) => out.push(k),
                        None => cx.error(at.key("children").index(j), format!("no template is named {c:?}")),
                    }
                }
                out
            };
            let body = match t.template_type.as_str() {
                "Serial" => NodeBody::Serial(children(self)),
                "Parallel" => NodeBody::Parallel(children(self)),
                "Suspend" => {
                    if deadline.is_none() {
                        self.error(at.key("deadline"), "a Suspend node waits for its deadline: it needs one");
                    }
                    NodeBody::Suspend
                }
                "Schedule" => match &t.schedule {
                    Some(s) => match self.schedule(s, &at.key("schedule"), false) {
                        Some(s) => {
                            if let Some(d) = deadline {
                                self.schedule_deadline(&s, d, &at);
                            }
                            NodeBody::Schedule(Box::new(s))
                        }
                        None => continue,
                    },
                    None => {
                        self.error(at.key("schedule"), "a Schedule node needs `schedule`");
                        continue;
                    }
                },
                "StatusCheck" => match &t.status_check {
                    Some(c) => match self.status_check(c, &at.key("statusCheck"), deadline) {
                        Some(check) => NodeBody::StatusCheck {
                            check: Box::new(check),
                            abort: t.abort_with_status_check.unwrap_or(false),
                        },
                        None => continue,
                    },
                    None => {
                        self.error(at.key("statusCheck"), "a StatusCheck node needs `statusCheck`");
                        continue;
                    }
                },
                "Task" => match self.task(t, &at, &index) {
                    Some(body) => body,
                    None => continue,
                },
                kind => match crate::mesh::schema::chaos::embed_key(kind) {
                    Some(key) => match self.template_chaos(t, key, &at) {
                        Some(spec) => match self.chaos(&spec, &at.key(key), deadline) {
                            Some(c) => NodeBody::Chaos(Box::new(c)),
                            None => continue,
                        },
                        None => continue,
                    },
                    None => {
                        self.error(
                            at.key("templateType"),
                            format!(
                                "{kind:?} is not one of Serial, Parallel, Suspend, Schedule, Task, StatusCheck or a \
                                 chaos kind ({})",
                                crate::mesh::schema::SUPPORTED_KINDS[..6].join(", ")
                            ),
                        );
                        continue;
                    }
                },
            };
            nodes.push((i, NodePlan { name: t.name.clone(), deadline, body, place: self.p.place(&at) }));
        }
        if self.errors > 0 {
            return None;
        }
        let nodes: Vec<NodePlan> = nodes.into_iter().map(|(_, n)| n).collect();
        let plan = WorkflowPlan { entry, nodes };
        if let Some(cycle) = cycle(&plan) {
            self.error(at.key("templates"), format!("templates refer to each other in a cycle: {cycle}"));
            return None;
        }
        Some(plan)
    }

    /// A status check at `at`; `deadline` (a workflow node's) replaces its duration.
    pub(super) fn status_check(
        &mut self,
        c: &crate::mesh::schema::StatusCheckSpec,
        at: &KeyPath,
        deadline: Option<Duration>,
    ) -> Option<StatusCheckPlan> {
        let errors = self.errors;
        let continuous = match c.mode.as_deref() {
            None | Some("Synchronous") => false,
            Some("Continuous") => true,
            Some(other) => {
                self.error(at.key("mode"), format!("{other:?} is not Synchronous or Continuous"));
                false
            }
        };
        if let Some(kind) = c.kind.as_deref()
            && kind != "HTTP"
        {
            self.error(at.key("type"), format!("{kind:?}: HTTP is the only type"));
        }
        let duration = deadline.or_else(|| self.duration(c.duration.as_deref(), at.key("duration")));
        if continuous && duration.is_none() && errors == self.errors {
            self.warning(
                at.key("duration"),
                "a Continuous check without a duration runs until it fails or is deleted",
            );
        }
        let positive = |cx: &mut Self, v: Option<i64>, key: &str, default: u32, max: i64| -> u32 {
            match v {
                None => default,
                Some(n) if (1..=max).contains(&n) => n as u32,
                Some(n) => {
                    cx.error(at.key(key), format!("{n} is not between 1 and {max}"));
                    default
                }
            }
        };
        let timeout = positive(self, c.timeout_seconds, "timeoutSeconds", 1, 86_400);
        let interval = positive(self, c.interval_seconds, "intervalSeconds", 10, 86_400);
        let failure_threshold = positive(self, c.failure_threshold, "failureThreshold", 3, 1_000_000);
        let success_threshold = positive(self, c.success_threshold, "successThreshold", 1, 1_000_000);
        let history_limit =
            positive(self, c.records_history_limit, "recordsHistoryLimit", 100, 1000) as usize;
        let Some(http) = &c.http else {
            self.error(at.key("http"), "required (HTTP is the only type)");
            return None;
        };
        let hat = at.key("http");
        let method = http.method.clone().unwrap_or_else(|| "GET".into());
        if method != "GET" && method != "POST" {
            self.error(hat.key("method"), format!("{method:?} is not GET or POST"));
        }
        let own = !http.url.starts_with("http://")
            && !http.url.starts_with("https://")
            && !http.url.starts_with('/');
        if own || http.url.parse::<hyper::Uri>().is_err() {
            self.error(
                hat.key("url"),
                format!("{:?} is not an http(s) URL or a path of chaoslab's own API", http.url),
            );
        }
        let code = &http.criteria.status_code;
        let parse = |t: &str| t.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
        let codes = match code.split_once('-') {
            Some((a, b)) => parse(a).zip(parse(b)).filter(|(a, b)| a <= b),
            None => parse(code).map(|c| (c, c)),
        };
        let Some(codes) = codes else {
            self.error(
                hat.key("criteria").key("statusCode"),
                format!("{code:?} is not a status code or an inclusive range (200, 200-399)"),
            );
            return None;
        };
        let headers = http
            .headers
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |v| (name.clone(), v.clone())))
            .collect();
        if self.errors > errors {
            return None;
        }
        Some(StatusCheckPlan {
            continuous,
            duration,
            timeout: Duration::from_secs(timeout.into()),
            interval: Duration::from_secs(interval.into()),
            failure_threshold,
            success_threshold,
            history_limit,
            http: HttpProbe { url: http.url.clone(), method, headers, body: http.body.clone(), codes },
        })
    }

    /// A Task node: its action and branches.
    pub(super) fn task(
        &mut self,
        t: &Template,
        at: &KeyPath,
        index: &std::collections::BTreeMap<&str, usize>,
    ) -> Option<NodeBody> {
        let errors = self.errors;
        let Some(container) = t.task.as_ref().and_then(|task| task.container.as_ref()) else {
            self.error(at.key("task").key("container"), "a Task node needs `task.container`");
            return None;
        };
        let cat = at.key("task").key("container");
        let argv: Vec<String> = container.command.iter().chain(&container.args).cloned().collect();
        let builtin = container
            .image
            .as_deref()
            .is_some_and(|i| i == "chaoslab" || i.starts_with("chaoslab:") || i.starts_with("chaoslab/"));
        let action = match argv.split_first() {
            None => {
                self.error(cat.key("command"), "empty: what should the task run?");
                None
            }
            Some((name, rest)) if builtin => match BUILTIN_TASKS.iter().find(|(n, _, _)| n == name) {
                Some((_, min, max)) if (*min..=*max).contains(&rest.len()) => {
                    Some(TaskAction::Builtin(argv.clone()))
                }
                Some((_, min, _)) => {
                    self.error(
                        cat.key("command"),
                        format!("{name} takes {min} argument(s), found {}", rest.len()),
                    );
                    None
                }
                None => {
                    let names: Vec<&str> = BUILTIN_TASKS.iter().map(|(n, _, _)| *n).collect();
                    self.error(
                        cat.key("command"),
                        format!("{name:?} is not a built-in task ({})", names.join(", ")),
                    );
                    None
                }
            },
            Some((program, rest)) => Some(TaskAction::Process {
                program: program.clone(),
                args: rest.to_vec(),
                env: container.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
            }),
        };
        let mut branches = Vec::new();
        for (i, b) in t.conditional_branches.iter().enumerate() {
            let bat = at.key("conditionalBranches").index(i);
            let Some(&target) = index.get(b.target.as_str()) else {
                self.error(bat.key("target"), format!("no template is named {:?}", b.target));
                continue;
            };
            let text = b.expression.clone().filter(|e| !e.trim().is_empty());
            let expression = match &text {
                None => None,
                Some(e) => match evalexpr::build_operator_tree::<evalexpr::DefaultNumericTypes>(e) {
                    Ok(tree) => Some(tree),
                    Err(err) => {
                        self.error(bat.key("expression"), format!("{e:?} does not parse: {err}"));
                        None
                    }
                },
            };
            branches.push(Branch { target, text, expression });
        }
        let action = action.filter(|_| self.errors == errors)?;
        Some(NodeBody::Task { action, branches })
    }

    /// The embedded chaos of a chaos template, which must be the one its type names.
    pub(super) fn template_chaos(&mut self, t: &Template, key: &str, at: &KeyPath) -> Option<ChaosSpec> {
        for other in t.unsupported() {
            self.error(at.key(other), "this chaos kind is not supported");
        }
        let mut found = None;
        for (k, spec) in t.embedded() {
            if k == key {
                found = Some(spec);
            } else {
                self.error(
                    at.key(k),
                    format!("templateType is {}: `{k}` does not belong here", t.template_type),
                );
            }
        }
        if found.is_none() {
            self.error(at.key(key), format!("templateType {} needs `{key}`", t.template_type));
        }
        found
    }

    /// Warns when a Schedule node's deadline is shorter than its cron's interval: Chaos Mesh deletes the
    /// node's Schedule (and what it created) at the deadline, so the cron fires at most once, and only
    /// when a tick falls within the deadline of the node's start.
    pub(super) fn schedule_deadline(&mut self, s: &SchedulePlan, deadline: Duration, at: &KeyPath) {
        let Some(interval) = s.cron.typical_interval() else { return };
        if deadline < interval {
            self.warning(
                at.key("deadline"),
                format!(
                    "the node ends after {} but its schedule {:?} ticks every {}: Chaos Mesh deletes a Schedule \
                     node's Schedule, and the chaos it created, at the node's deadline, so this fires at most once, \
                     and only when a tick falls within {} of the node's start",
                    duration::format(deadline),
                    s.cron_text,
                    duration::format(interval),
                    duration::format(deadline),
                ),
            );
        }
    }
}
