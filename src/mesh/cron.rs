//! Schedules as Chaos Mesh reads them (robfig/cron v3 with `SecondOptional | Minute | Hour | Dom | Month
//! | Dow | Descriptor`): five fields, six with seconds first, `@hourly`-style descriptors, and
//! `@every <Go duration>`. Field expressions are evaluated by `croner`; `@every` is robfig's constant
//! delay (rounded to whole seconds, at least one), counted from the time given.

use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use croner::Cron as Expr;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule.
#[derive(Clone, Debug)]
pub enum Cron {
    /// A cron expression.
    Expr(Box<Expr>),
    /// `@every`: a constant delay.
    Every(Duration),
}

impl Cron {
    /// Parses a schedule; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let text = text.trim();
        if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
            return Err("time zones (TZ=) are not supported: schedules run on the run's UTC calendar".into());
        }
        if let Some(every) = text.strip_prefix("@every") {
            let every = every.trim();
            let d = super::duration::parse_std(every).map_err(|e| format!("@every: {e}"))?;
            // robfig rounds to a second, and a delay under one second becomes one.
            let secs = d.as_secs().max(1);
            return Ok(Cron::Every(Duration::from_secs(secs)));
        }
        if text == "@reboot" {
            return Err("@reboot is not a schedule Chaos Mesh accepts".into());
        }
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!("expected 5 fields (or 6 with seconds first), found {fields}"));
        }
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        parser.parse(text).map(|e| Cron::Expr(Box::new(e))).map_err(|e| e.to_string())
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Cron::Every(d) => {
                let base = t.trunc_subsecs(0);
                Some(base + chrono::Duration::from_std(*d).ok()?)
            }
            Cron::Expr(e) => e.find_next_occurrence(&t.trunc_subsecs(0), false).ok(),
        }
    }

    /// The shortest gap between consecutive ticks over the first few after a fixed reference (for
    /// warnings about deadlines shorter than the schedule).
    pub fn typical_interval(&self) -> Option<Duration> {
        if let Cron::Every(d) = self {
            return Some(*d);
        }
        let reference = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").ok()?.to_utc();
        let mut last = self.next_after(reference)?;
        let mut shortest: Option<Duration> = None;
        for _ in 0..16 {
            let next = self.next_after(last)?;
            let gap = (next - last).to_std().ok()?;
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            last = next;
        }
        shortest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn next_ticks_are_strictly_after() {
        let c = Cron::parse("*/2 * * * *").unwrap();
        assert_eq!(c.next_after(at("2024-06-01T12:00:00Z")), Some(at("2024-06-01T12:02:00Z")));
        assert_eq!(c.next_after(at("2024-06-01T12:01:59.5Z")), Some(at("2024-06-01T12:02:00Z")));
        let six = Cron::parse("*/10 * * * * *").unwrap();
        assert_eq!(six.next_after(at("2024-06-01T12:00:00Z")), Some(at("2024-06-01T12:00:10Z")));
        let hourly = Cron::parse("@hourly").unwrap();
        assert_eq!(hourly.next_after(at("2024-06-01T12:00:00Z")), Some(at("2024-06-01T13:00:00Z")));
        let every = Cron::parse("@every 5s").unwrap();
        assert_eq!(every.next_after(at("2024-06-01T12:00:00.300Z")), Some(at("2024-06-01T12:00:05Z")));
        assert!(
            matches!(Cron::parse("@every 1500ms").unwrap(), Cron::Every(d) if d == Duration::from_secs(1))
        );
        assert_eq!(c.typical_interval(), Some(Duration::from_secs(120)));
        assert_eq!(hourly.typical_interval(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn bad_schedules_say_why() {
        assert!(Cron::parse("* * *").unwrap_err().contains("expected 5 fields"));
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("@every").unwrap_err().starts_with("@every"));
        assert!(Cron::parse("@every 5").unwrap_err().contains("missing unit"));
        assert!(Cron::parse("TZ=Europe/Berlin * * * * *").unwrap_err().contains("time zones"));
    }
}
