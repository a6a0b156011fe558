//! `IOChaos`: latency, faults, mistakes and attribute overrides on the stores' reads and writes.

use serde_json::{Value, json};

use super::{Cx, Effect, fault};
use crate::config::KeyPath;
use crate::mesh::schema::chaos::IoChaosSpec;

impl Cx<'_, '_> {
    /// `IOChaos` on the stores and sinks. `methods` are grouped into reads and writes (the operations the
    /// stores do), `path` is a glob under `volumePath` matched against the store's paths (HADOOP's
    /// `DAY/FILE`, NODE-RED's file, ELASTICSEARCH's indices, the order store's `orders` and `outbox`),
    /// `percent` the share of operations hit. `attrOverride` acts through the one attribute the stores
    /// depend on: a `perm` without the owner's write (read) bit fails writes (reads) with EACCES.
    pub(super) fn io(&mut self, io: &IoChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        let percent = match io.percent {
            None => 100.0,
            Some(p) if (0..=100).contains(&p) => p as f64,
            Some(p) => {
                self.error(at.key("percent"), format!("{p} is not a percentage (0 to 100)"));
                100.0
            }
        };
        let mut methods: Vec<&str> = Vec::new();
        for (i, m) in io.methods.iter().enumerate() {
            match io_method(m) {
                Some(class) => methods.push(class),
                None => self.error(
                    at.key("methods").index(i),
                    format!("{m:?} is not a FUSE operation Chaos Mesh names"),
                ),
            }
        }
        methods.sort_unstable();
        methods.dedup();
        let path = self.io_path(io, at);
        let scope = |mut v: Value, methods: &[&str]| {
            if let Value::Object(m) = &mut v {
                m.insert(
                    "methods".into(),
                    json!(if methods.is_empty() { vec!["read", "write"] } else { methods.to_vec() }),
                );
                if let Some(p) = &path {
                    m.insert("path".into(), json!(p));
                }
            }
            v
        };
        let f = match io.action.as_str() {
            "latency" => match self.duration(io.delay.as_deref(), at.key("delay")) {
                Some(d) => fault(
                    "io-latency",
                    scope(json!({ "delay": d.as_secs_f64(), "percent": percent }), &methods),
                ),
                None => {
                    if io.delay.is_none() {
                        self.error(at.key("delay"), "action latency needs `delay`");
                    }
                    return None;
                }
            },
            "fault" => match io.errno {
                Some(28) => fault("disk-full", scope(json!({}), &methods)),
                Some(errno @ 1..=133) => {
                    fault("io-error", scope(json!({ "percent": percent, "errno": errno }), &methods))
                }
                Some(errno) => {
                    self.error(at.key("errno"), format!("{errno} is not an error number (1 to 133)"));
                    return None;
                }
                None => {
                    self.error(at.key("errno"), "action fault needs `errno`");
                    return None;
                }
            },
            "mistake" => {
                let Some(m) = &io.mistake else {
                    self.error(at.key("mistake"), "action mistake needs `mistake`");
                    return None;
                };
                let filling = m.filling.clone().unwrap_or_else(|| "zero".into());
                if filling != "zero" && filling != "random" {
                    self.error(
                        at.key("mistake").key("filling"),
                        format!("{filling:?} is not zero or random"),
                    );
                }
                let occurrences = m.max_occurrences.unwrap_or(1);
                let length = m.max_length.unwrap_or(1);
                for (key, v) in [("maxOccurrences", occurrences), ("maxLength", length)] {
                    if !(1..=1_000_000).contains(&v) {
                        self.error(at.key("mistake").key(key), format!("{v} is not between 1 and 1000000"));
                    }
                }
                if methods.contains(&"read") && !methods.contains(&"write") {
                    self.warning(
                        at.key("methods"),
                        "wrong data is written, not read: a read-only mistake injects nothing",
                    );
                }
                let params = json!({ "filling": filling, "occurrences": occurrences, "length": length, "percent": percent });
                fault("io-mistake", scope(params, &["write"]))
            }
            "attrOverride" => return self.attr_override(io, at, percent, scope),
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of latency, fault, attrOverride, mistake"),
                );
                return None;
            }
        };
        (self.errors == errors).then(|| (io.action.clone(), Effect::Pods { faults: vec![f] }))
    }

    /// `path` relative to `volumePath`, as the stores' paths are; `**/` is any depth, the root included.
    fn io_path(&mut self, io: &IoChaosSpec, at: &KeyPath) -> Option<String> {
        let glob = io.path.as_deref()?.trim();
        let volume = io.volume_path.trim_end_matches('/');
        let Some(rel) = glob.strip_prefix(volume).filter(|r| r.is_empty() || r.starts_with('/')) else {
            self.error(at.key("path"), format!("{glob:?} is not under volumePath {:?}", io.volume_path));
            return None;
        };
        let rel = rel.trim_start_matches('/').replace("**/", "*");
        (!rel.is_empty() && rel != "*" && rel != "**").then_some(rel)
    }

    fn attr_override(
        &mut self,
        io: &IoChaosSpec,
        at: &KeyPath,
        percent: f64,
        scope: impl Fn(Value, &[&str]) -> Value,
    ) -> Option<(String, Effect)> {
        let errors = self.errors;
        let aat = at.key("attr");
        let Some(Value::Object(attr)) = &io.attr else {
            self.error(aat, "action attrOverride needs `attr` (perm, size, …)");
            return None;
        };
        let mut faults = Vec::new();
        for (key, value) in attr {
            match key.as_str() {
                "perm" => {
                    let Some(perm) = perm_value(value).filter(|p| *p <= 0o7777) else {
                        self.error(
                            aat.key("perm"),
                            format!("{value} is not a permission (0 to 4095, e.g. 292 for 0444)"),
                        );
                        continue;
                    };
                    let mut denied = Vec::new();
                    if perm & 0o400 == 0 {
                        denied.push("read");
                    }
                    if perm & 0o200 == 0 {
                        denied.push("write");
                    }
                    if denied.is_empty() {
                        self.warning(
                            aat.key("perm"),
                            format!("{perm:#o} lets the owner read and write: it injects nothing"),
                        );
                    } else {
                        faults.push(fault(
                            "io-error",
                            scope(json!({ "percent": percent, "errno": 13 }), &denied),
                        ));
                    }
                }
                "ino" | "size" | "blocks" | "atime" | "mtime" | "ctime" | "kind" | "nlink" | "uid"
                | "gid" | "rdev" => {
                    self.warning(
                        aat.key(key),
                        format!("the stores never read a file's {key}: overriding it injects nothing"),
                    );
                }
                other => self
                    .error(aat.key(other), format!("{other:?} is not a file attribute Chaos Mesh overrides")),
            }
        }
        (self.errors == errors).then(|| ("attrOverride".into(), Effect::Pods { faults }))
    }
}

/// A `perm`: a number, or in YAML text a decimal, or octal with a leading `0` (YAML 1.1, as Kubernetes
/// reads it) or `0o`.
fn perm_value(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0o").or_else(|| s.strip_prefix('0').filter(|r| !r.is_empty())) {
                Some(octal) => u64::from_str_radix(octal, 8).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// The class of a FUSE operation Chaos Mesh's IOChaos names (`api/v1alpha1/iochaos_types.go`).
fn io_method(m: &str) -> Option<&'static str> {
    Some(match m {
        "lookup" | "forget" | "getattr" | "readlink" | "open" | "read" | "release" | "opendir"
        | "readdir" | "releasedir" | "statfs" | "getxattr" | "listxattr" | "access" | "getlk" | "bmap" => {
            "read"
        }
        "setattr" | "mknod" | "mkdir" | "unlink" | "rmdir" | "symlink" | "rename" | "link" | "write"
        | "flush" | "fsync" | "fsyncdir" | "setxattr" | "removexattr" | "create" | "setlk" | "setlkw"
        | "fallocate" => "write",
        _ => return None,
    })
}
