//! `Schedule`, `Workflow` (with its templates) and `StatusCheck`.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::chaos::{
    ChaosSpec, HttpChaosSpec, IoChaosSpec, NetworkChaosSpec, PodChaosSpec, StressChaosSpec, TimeChaosSpec,
};

/// Declares a struct that may embed a chaos spec under its kind's key (`podChaos: {…}`), as Chaos Mesh's
/// `EmbedChaos` does, plus the struct's own fields.
macro_rules! embeds_chaos {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// An embedded `NetworkChaos`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub network_chaos: Option<NetworkChaosSpec>,
            /// An embedded `PodChaos`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub pod_chaos: Option<PodChaosSpec>,
            /// An embedded `TimeChaos`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub time_chaos: Option<TimeChaosSpec>,
            /// An embedded `StressChaos`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub stress_chaos: Option<StressChaosSpec>,
            /// An embedded `IOChaos`.
            #[serde(default, rename = "ioChaos", skip_serializing_if = "Option::is_none")]
            pub io_chaos: Option<IoChaosSpec>,
            /// An embedded `HTTPChaos`.
            #[serde(default, rename = "httpChaos", skip_serializing_if = "Option::is_none")]
            pub http_chaos: Option<HttpChaosSpec>,
            #[serde(default, skip_serializing)]
            jvm_chaos: Option<IgnoredAny>,
            #[serde(default, skip_serializing)]
            dns_chaos: Option<IgnoredAny>,
            #[serde(default, skip_serializing)]
            kernel_chaos: Option<IgnoredAny>,
            #[serde(default, skip_serializing)]
            block_chaos: Option<IgnoredAny>,
            #[serde(default, skip_serializing, rename = "awsChaos")]
            aws_chaos: Option<IgnoredAny>,
            #[serde(default, skip_serializing, rename = "gcpChaos")]
            gcp_chaos: Option<IgnoredAny>,
            #[serde(default, skip_serializing)]
            azure_chaos: Option<IgnoredAny>,
            #[serde(default, skip_serializing, rename = "physicalmachineChaos")]
            physical_machine_chaos: Option<IgnoredAny>,
        }

        impl $name {
            /// Every chaos spec embedded, with its key.
            pub fn embedded(&self) -> Vec<(&'static str, ChaosSpec)> {
                let mut out = Vec::new();
                if let Some(s) = &self.network_chaos {
                    out.push(("networkChaos", ChaosSpec::Network(s.clone())));
                }
                if let Some(s) = &self.pod_chaos {
                    out.push(("podChaos", ChaosSpec::Pod(s.clone())));
                }
                if let Some(s) = &self.time_chaos {
                    out.push(("timeChaos", ChaosSpec::Time(s.clone())));
                }
                if let Some(s) = &self.stress_chaos {
                    out.push(("stressChaos", ChaosSpec::Stress(s.clone())));
                }
                if let Some(s) = &self.io_chaos {
                    out.push(("ioChaos", ChaosSpec::Io(s.clone())));
                }
                if let Some(s) = &self.http_chaos {
                    out.push(("httpChaos", ChaosSpec::Http(s.clone())));
                }
                out
            }

            /// Keys of embedded kinds chaoslab does not run.
            pub fn unsupported(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                let present = [
                    (self.jvm_chaos.is_some(), "jvmChaos"),
                    (self.dns_chaos.is_some(), "dnsChaos"),
                    (self.kernel_chaos.is_some(), "kernelChaos"),
                    (self.block_chaos.is_some(), "blockChaos"),
                    (self.aws_chaos.is_some(), "awsChaos"),
                    (self.gcp_chaos.is_some(), "gcpChaos"),
                    (self.azure_chaos.is_some(), "azureChaos"),
                    (self.physical_machine_chaos.is_some(), "physicalmachineChaos"),
                ];
                for (is, key) in present {
                    if is {
                        out.push(key);
                    }
                }
                out
            }
        }
    };
}

embeds_chaos! {
    /// `Schedule.spec` (and a workflow's `Schedule` node, which may not embed a Workflow).
    ScheduleSpec {
        /// Cron: 5 fields, 6 with seconds first, `@hourly`…, `@every 30s`.
        schedule: String,
        /// A tick missed by more than this many seconds is not run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starting_deadline_seconds: Option<i64>,
        /// `Forbid` (default) or `Allow`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        concurrency_policy: Option<String>,
        /// Spawned objects kept (default 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        history_limit: Option<i64>,
        /// The spawned kind: a chaos kind or `Workflow` (required by Chaos Mesh's CRD; chaoslab infers it
        /// from the one embedded spec when it is missing, with a warning).
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// An embedded `Workflow` (`type: Workflow`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workflow: Option<WorkflowSpec>,
    }
}

/// `Workflow.spec`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The template the workflow starts with.
    pub entry: String,
    /// Its templates.
    pub templates: Vec<Template>,
}

embeds_chaos! {
    /// One workflow template.
    Template {
        /// Its name (referenced by `entry`, `children` and branch targets).
        name: String,
        /// `Serial`, `Parallel`, `Suspend`, `Task`, `Schedule`, `StatusCheck` or a chaos kind.
        template_type: String,
        /// How long the node may run (Go duration); a parent's deadline bounds its children.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<String>,
        /// `Serial` and `Parallel`: the children, by template name.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        children: Vec<String>,
        /// `Task`: what to run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<Task>,
        /// `Task`: which templates come next, by the task's exit code and output.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        conditional_branches: Vec<ConditionalBranch>,
        /// `Schedule`: the schedule.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<Box<ScheduleSpec>>,
        /// `StatusCheck`: the check.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_check: Option<StatusCheckSpec>,
        /// `StatusCheck`: a failed check aborts the workflow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        abort_with_status_check: Option<bool>,
    }
}

/// `Task.task`: a container to run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Task {
    /// The container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Volumes (accepted, not used).
    #[serde(default, skip_serializing)]
    volumes: Option<IgnoredAny>,
}

/// The parts of a Kubernetes container a task uses.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// The image (informational: the command runs in this process's environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing)]
    image_pull_policy: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    resources: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    volume_mounts: Option<IgnoredAny>,
}

/// `env[]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// `conditionalBranches[]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionalBranch {
    /// The template to run when the expression holds.
    pub target: String,
    /// A boolean over `exitCode` and `stdout`; empty: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// `StatusCheck.spec`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusCheckSpec {
    /// `Synchronous` (default) or `Continuous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `HTTP` (the only type).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How long a `Continuous` check runs (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Seconds one probe may take (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Seconds between probes (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<i64>,
    /// Consecutive failures that fail the check (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i64>,
    /// Consecutive successes that pass it (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i64>,
    /// Records kept (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_history_limit: Option<i64>,
    /// The HTTP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
}

/// `statusCheck.http`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    /// The URL.
    pub url: String,
    /// `GET` (default) or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers (each a list of values, as Go's `http.Header`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// The body of a `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// What counts as success.
    pub criteria: HttpCriteria,
}

/// `statusCheck.http.criteria`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCriteria {
    /// A code (`200`), a list (`200,201`) or a range (`200-399`).
    pub status_code: String,
}
