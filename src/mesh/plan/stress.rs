//! `StressChaos`: stressors (and stress-ng's options) as CPU and memory stress.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Cx, Effect, fault};
use crate::config::KeyPath;
use crate::mesh::schema::chaos::{CpuStressor, MemoryStressor, StressChaosSpec, Stressors};

impl Cx<'_, '_> {
    /// `StressChaos`: CPU stressors slow the work the selected components model (a service rate, as the
    /// miner's `throughput`) to 1/(1 + workers × load/100) — a stressor taking `load` percent of a core
    /// beside them; memory stressors make the process hold `size` × `workers` more memory.
    pub(super) fn stress(&mut self, st: &StressChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        if let Some(options) = &st.stressng_stressors {
            // Chaos Mesh: "when both StressngStressors and Stressors are defined, StressngStressors wins".
            if st.stressors.is_some() {
                self.warning(
                    at.key("stressors"),
                    "stressngStressors is given too, and wins (as in Chaos Mesh)",
                );
            }
            return self.stress_ng(options, &at.key("stressngStressors"));
        }
        match &st.stressors {
            Some(s) => self.stressors(s, &at.key("stressors")),
            None => {
                self.error(at.key("stressors"), "a StressChaos needs a cpu or a memory stressor");
                None
            }
        }
    }

    fn stressors(&mut self, s: &Stressors, sat: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        let mut faults = Vec::new();
        let mut actions = Vec::new();
        for (key, options) in
            [("cpu", s.cpu.as_ref().map(|c| &c.options)), ("memory", s.memory.as_ref().map(|m| &m.options))]
        {
            if options.is_some_and(|o| !o.is_empty()) {
                self.warning(
                    sat.key(key).key("options"),
                    "extra stress-ng options change nothing chaoslab models",
                );
            }
        }
        if let Some(cpu) = s.cpu.as_ref() {
            let load = cpu.load.unwrap_or(100);
            if !(1..=64).contains(&cpu.workers) {
                self.error(sat.key("cpu").key("workers"), format!("{} is not between 1 and 64", cpu.workers));
            }
            if !(0..=100).contains(&load) {
                self.error(sat.key("cpu").key("load"), format!("{load} is not a percentage (0 to 100)"));
            }
            actions.push("cpu");
            faults.push(fault("cpu-stress", json!({ "workers": cpu.workers, "load": load })));
        }
        if let Some(mem) = s.memory.as_ref() {
            let size = mem.size.as_deref().unwrap_or("256MB");
            match memory_size(size) {
                Ok(bytes) => {
                    let mb = (bytes * mem.workers.max(1) as u64).div_ceil(1024 * 1024);
                    if mb > 4096 {
                        self.error(
                            sat.key("memory").key("size"),
                            format!("{size} × {} workers is over 4 GiB", mem.workers),
                        );
                    }
                    actions.push("memory");
                    faults.push(fault("memory-stress", json!({ "megabytes": mb.max(1) })));
                }
                Err(e) => self.error(sat.key("memory").key("size"), e),
            }
        }
        if faults.is_empty() && self.errors == errors {
            self.error(sat.clone(), "a StressChaos needs a cpu or a memory stressor");
        }
        (self.errors == errors).then(|| (actions.join("+"), Effect::Pods { faults }))
    }

    /// `stressngStressors`: stress-ng's options, read for the stressors chaoslab models — `--cpu N`
    /// (`-c`) with `--cpu-load P` (`-l`), `--vm N` (`-m`) with `--vm-bytes SIZE`; other stressors are
    /// named in a warning and ignored.
    fn stress_ng(&mut self, options: &str, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        let Some(words) = shlex::split(options) else {
            self.error(at.clone(), format!("{options:?}: unbalanced quotes"));
            return None;
        };
        let mut values: BTreeMap<&str, String> = BTreeMap::new();
        let mut ignored = Vec::new();
        let mut words = words.iter().peekable();
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (word.as_str(), None),
            };
            let name = match flag {
                "--cpu" | "-c" => "cpu",
                "--cpu-load" | "-l" => "cpu-load",
                "--vm" | "-m" => "vm",
                "--vm-bytes" => "vm-bytes",
                f if f.starts_with('-') => {
                    // An option we do not model, with its value when the next word is not an option.
                    if inline.is_none() && words.peek().is_some_and(|w| !w.starts_with('-')) {
                        words.next();
                    }
                    ignored.push(f.to_owned());
                    continue;
                }
                other => {
                    self.error(at.clone(), format!("{other:?} is not a stress-ng option"));
                    continue;
                }
            };
            match inline.or_else(|| words.next().cloned()) {
                Some(v) => {
                    values.insert(name, v);
                }
                None => self.error(at.clone(), format!("{flag} needs a value")),
            }
        }
        if !ignored.is_empty() {
            self.warning(
                at.clone(),
                format!(
                    "chaoslab models --cpu, --cpu-load, --vm and --vm-bytes; ignored: {}",
                    ignored.join(" ")
                ),
            );
        }
        let number = |cx: &mut Self, key: &str, max: u64| -> Option<u64> {
            let v = values.get(key)?;
            match v.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Some(n),
                _ => {
                    cx.error(at.clone(), format!("--{key} {v}: a whole number from 1 to {max}"));
                    None
                }
            }
        };
        let cpu = number(self, "cpu", 64);
        let load = number(self, "cpu-load", 100);
        let vm = number(self, "vm", 64);
        let mut stressors = Stressors::default();
        if let Some(workers) = cpu {
            let load = load.map(|l| l as i64);
            stressors.cpu = Some(CpuStressor { workers: workers as i64, load, options: Vec::new() });
        }
        if let Some(workers) = vm {
            let size = values.get("vm-bytes").cloned();
            let workers = workers as i64;
            stressors.memory =
                Some(MemoryStressor { workers, size, oom_score_adj: None, options: Vec::new() });
        }
        if stressors.cpu.is_none() && stressors.memory.is_none() {
            if self.errors == errors {
                self.error(at.clone(), "no --cpu or --vm stressor: nothing chaoslab models");
            }
            return None;
        }
        self.stressors(&stressors, at)
    }
}

/// A stress-ng memory size (`256MB`, `1GB`, `512KB`, `1024`, also `MiB`/`GiB`/`KiB`) in bytes; percentages
/// of total memory are not supported (one process has no memory limit to take a share of).
fn memory_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.ends_with('%') {
        return Err(format!("{t:?}: a share of memory is not supported; give a size such as 256MB"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{t:?} is not a memory size (such as 256MB)"))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{t:?}: unknown unit (B, KB, MB, GB)")),
    };
    n.checked_mul(factor).filter(|b| *b > 0).ok_or_else(|| format!("{t:?} is not a usable size"))
}
