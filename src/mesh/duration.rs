//! Go's duration syntax (`time.ParseDuration`), which every Chaos Mesh duration, deadline, latency and
//! time offset uses: a sequence of decimal numbers with units (`1h30m`, `300ms`, `-1.5h`, `2h45m10.5s`),
//! units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, and a bare `0`.
//!
//! Written here rather than taken from a crate: `humantime` reads a different language (`1h 30m`, no
//! fractions, no sign), and the differences matter — a file must mean in chaoslab what it means to Chaos
//! Mesh, and a unitless value (`jitter: '0'`) must be told apart because Chaos Mesh 2.8 rejects it.

use std::time::Duration;

/// A parsed Go duration: nanoseconds, signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration {
    /// Nanoseconds; negative for `-…`.
    pub nanos: i128,
    /// True when the text had no unit (only `0`, `+0` or `-0` parse that way).
    pub unitless: bool,
}

impl GoDuration {
    /// The duration, when it is not negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.nanos).ok().map(Duration::from_nanos)
    }

    /// Milliseconds, signed (rounded towards zero).
    pub fn millis(self) -> i64 {
        (self.nanos / 1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// Parses `text` as Go's `time.ParseDuration` does; the error says what is wrong, as Go's does.
pub fn parse(text: &str) -> Result<GoDuration, String> {
    let original = text;
    let mut s = text;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(GoDuration { nanos: 0, unitless: true });
    }
    if s.is_empty() {
        return Err(format!("invalid duration {original:?}"));
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        // The number: digits, optionally a fraction.
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, rest) = s.split_at(int_end);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(after) => {
                let end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
                after.split_at(end)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!("invalid duration {original:?}"));
        }
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_end);
        let scale: i128 = match unit {
            "" => return Err(format!("missing unit in duration {original:?}")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => return Err(format!("unknown unit {other:?} in duration {original:?}")),
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| format!("invalid duration {original:?}"))?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(|| format!("invalid duration {original:?}"))?;
        let mut unit_scale = scale;
        for digit in frac_part.bytes().take(30) {
            unit_scale /= 10;
            value += i128::from(digit - b'0') * unit_scale;
        }
        total = total.checked_add(value).ok_or_else(|| format!("invalid duration {original:?}"))?;
        if total > i64::MAX as i128 {
            return Err(format!("invalid duration {original:?}"));
        }
        s = rest;
    }
    Ok(GoDuration { nanos: if negative { -total } else { total }, unitless: false })
}

/// Parses a duration that must not be negative.
pub fn parse_std(text: &str) -> Result<Duration, String> {
    let d = parse(text)?;
    d.to_std().ok_or_else(|| format!("{text:?} is negative"))
}

/// `1m30s`, `500ms`, `0s`: a duration as Go prints it (for events and listings).
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_millis();
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac > 0 {
        let frac = format!("{frac:03}");
        out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
    } else {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse(text).unwrap().millis()
    }

    #[test]
    fn go_syntax() {
        assert_eq!(ms("30s"), 30_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1.5h"), 5_400_000);
        assert_eq!(ms("-10m"), -600_000);
        assert_eq!(parse("-10m100ns").unwrap().nanos, -600_000_000_100);
        assert_eq!(ms("300ms"), 300);
        assert_eq!(parse("1us").unwrap().nanos, 1000);
        assert_eq!(parse("1µs").unwrap().nanos, 1000);
        assert_eq!(ms(".5s"), 500);
        assert_eq!(ms("2h45m10.5s"), 9_910_500);
        let zero = parse("0").unwrap();
        assert!(zero.unitless && zero.nanos == 0);
        assert!(!parse("0ms").unwrap().unitless);
        assert!(parse("20").unwrap_err().contains("missing unit"));
        assert!(parse("5 s").unwrap_err().contains("unknown unit"));
        assert!(parse("").is_err() && parse("-").is_err() && parse("s").is_err() && parse(".s").is_err());
        assert!(parse("3d").unwrap_err().contains("unknown unit \"d\""));
        assert!(parse("99999999999999999999h").is_err());
        assert!(parse_std("-1s").unwrap_err().contains("negative"));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
    }
}
