//! Which targets a fault takes: a pattern plus Chaos Mesh's selector modes.
//!
//! The pattern is an exact name, a glob with `*` (`KAFKA-*`, `*->FLINK`), or `kind:<kind>` for every
//! component registered with that kind. The mode then picks among the matches — `one`, `all`,
//! `fixed` (n of them), `fixed-percent` (that share) or `random-max-percent` (a random share up to
//! it) — drawing from the fault manager's seeded stream, so a sim run picks the same targets every time.

use rand::Rng as _;
use rand::seq::SliceRandom as _;
use serde::Serialize;

use crate::kernel::seed::Rng;

/// Chaos Mesh's selector modes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "value")]
pub enum SelectorMode {
    /// One target, at random.
    One,
    /// Every match.
    All,
    /// This many, at random.
    Fixed(usize),
    /// This share (percent), at random.
    FixedPercent(f64),
    /// A random share up to this percent.
    RandomMaxPercent(f64),
}

/// A target pattern and a mode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Selector {
    pattern: String,
    /// How matches are picked.
    pub mode: SelectorMode,
}

impl Selector {
    /// Parses a request's `target`, `mode` and `value`. Without a mode, `all` is used for an exact name
    /// (there is one match) and `one` otherwise, as Chaos Mesh's default is `one`.
    pub fn parse(target: Option<&str>, mode: Option<&str>, value: Option<&str>) -> Result<Selector, String> {
        let pattern = match target.map(str::trim) {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => return Err("target: required".into()),
        };
        let number = |what: &str| -> Result<f64, String> {
            let v = value.ok_or_else(|| format!("value: mode {what} needs a value"))?;
            v.trim().trim_end_matches('%').parse::<f64>().map_err(|_| format!("value: {v:?} is not a number"))
        };
        let percent = |what: &str| -> Result<f64, String> {
            let p = number(what)?;
            if (0.0..=100.0).contains(&p) && p > 0.0 {
                Ok(p)
            } else {
                Err(format!("value: {p} is not a percentage in (0, 100]"))
            }
        };
        let mode = match mode.map(str::trim) {
            None | Some("") => {
                if pattern.contains('*') || pattern.starts_with("kind:") {
                    SelectorMode::One
                } else {
                    SelectorMode::All
                }
            }
            Some("one") => SelectorMode::One,
            Some("all") => SelectorMode::All,
            Some("fixed") => {
                let n = number("fixed")?;
                if n < 1.0 || n.fract() != 0.0 {
                    return Err(format!("value: fixed needs a whole number ≥ 1, got {n}"));
                }
                SelectorMode::Fixed(n as usize)
            }
            Some("fixed-percent") => SelectorMode::FixedPercent(percent("fixed-percent")?),
            Some("random-max-percent") => SelectorMode::RandomMaxPercent(percent("random-max-percent")?),
            Some(other) => {
                return Err(format!(
                    "mode: {other:?} is not one of one, all, fixed, fixed-percent, random-max-percent"
                ));
            }
        };
        Ok(Selector { pattern, mode })
    }

    /// Every match of `pattern`.
    pub fn all_of(pattern: &str) -> Selector {
        Selector { pattern: pattern.to_owned(), mode: SelectorMode::All }
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// True when `name` (of component kind `kind`, if it is a component) matches the pattern.
    pub fn matches(&self, name: &str, kind: Option<&str>) -> bool {
        match self.pattern.strip_prefix("kind:") {
            Some(k) => kind == Some(k),
            None => glob(&self.pattern, name),
        }
    }

    /// Picks targets among `candidates` (sorted, so the pick depends only on the seed). Errors when
    /// nothing matches, naming what exists.
    pub fn pick(
        &self,
        candidates: &[(String, Option<String>)],
        rng: &mut Rng,
    ) -> Result<Vec<String>, String> {
        let mut matched: Vec<String> = candidates
            .iter()
            .filter(|(n, k)| self.matches(n, k.as_deref()))
            .map(|(n, _)| n.clone())
            .collect();
        matched.sort();
        matched.dedup();
        if matched.is_empty() {
            let known: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "target: {:?} matches nothing (candidates: {})",
                self.pattern,
                known.join(", ")
            ));
        }
        let n = matched.len();
        let count = match self.mode {
            SelectorMode::All => n,
            SelectorMode::One => 1,
            SelectorMode::Fixed(k) => {
                if k > n {
                    return Err(format!("value: fixed {k} but only {n} targets match {:?}", self.pattern));
                }
                k
            }
            SelectorMode::FixedPercent(p) => ((n as f64 * p / 100.0).floor() as usize).max(1),
            SelectorMode::RandomMaxPercent(p) => {
                let max = ((n as f64 * p / 100.0).floor() as usize).max(1);
                rng.gen_range(1..=max)
            }
        };
        if count < n {
            matched.shuffle(rng);
            matched.truncate(count);
            matched.sort();
        }
        Ok(matched)
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first)
        || !name[first.len()..].ends_with(last)
        || name.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::seed::Seed;

    fn cands(names: &[&str]) -> Vec<(String, Option<String>)> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Some(if n.starts_with("KAFKA-") { "kafka-broker" } else { "other" }.to_string()),
                )
            })
            .collect()
    }

    #[test]
    fn globs() {
        assert!(glob("KAFKA-*", "KAFKA-2"));
        assert!(glob("*->FLINK", "MQTT_BROKER->FLINK"));
        assert!(glob("*BROKER*", "MQTT_BROKER->NIFI"));
        assert!(!glob("KAFKA-*", "KAFKA"));
        assert!(glob("KAFKA*", "KAFKA"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("FLINK", "FLINK") && !glob("FLINK", "FLINK2"));
    }

    #[test]
    fn modes_pick_the_right_number_deterministically() {
        let c = cands(&["KAFKA-1", "KAFKA-2", "KAFKA-3", "KAFKA-4", "FLINK"]);
        let pick = |target: &str, mode: Option<&str>, value: Option<&str>, seed: u64| {
            Selector::parse(Some(target), mode, value).unwrap().pick(&c, &mut Seed(seed).stream("faults"))
        };
        assert_eq!(pick("KAFKA-*", Some("all"), None, 1).unwrap().len(), 4);
        assert_eq!(pick("kind:kafka-broker", Some("all"), None, 1).unwrap().len(), 4);
        assert_eq!(pick("KAFKA-*", None, None, 1).unwrap().len(), 1);
        assert_eq!(pick("KAFKA-*", Some("fixed"), Some("3"), 1).unwrap().len(), 3);
        assert_eq!(pick("KAFKA-*", Some("fixed-percent"), Some("50"), 1).unwrap().len(), 2);
        let r = pick("KAFKA-*", Some("random-max-percent"), Some("75"), 1).unwrap().len();
        assert!((1..=3).contains(&r));
        assert_eq!(
            pick("KAFKA-*", Some("one"), None, 9).unwrap(),
            pick("KAFKA-*", Some("one"), None, 9).unwrap()
        );
        let err = pick("SPARK", None, None, 1).unwrap_err();
        assert!(err.contains("matches nothing") && err.contains("FLINK"), "{err}");
        assert!(pick("KAFKA-*", Some("fixed"), Some("9"), 1).unwrap_err().contains("only 4"));
        assert!(Selector::parse(Some("X"), Some("some"), None).unwrap_err().starts_with("mode:"));
        assert!(
            Selector::parse(Some("X"), Some("fixed-percent"), Some("150")).unwrap_err().starts_with("value:")
        );
    }
}
