//! The log event that flows through chaoslab's Fluentd-compatible log routing, and its timestamp.
//!
//! Fluentd events are `(tag, time, record)` triples with nanosecond time (`EventTime`). The router never
//! reads the clock: every event carries its time, set by whoever produced it (the simulator's virtual
//! clock, or a live listener). This module also owns the translation of Fluentd's Ruby `strftime`
//! formats (`%N`, `%3N`, `%L`) so that `<inject>` and `time_format` settings behave like Fluentd's.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

/// Nanoseconds in one second.
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A point in time with nanosecond precision, as in Fluentd's `EventTime` (seconds + nanoseconds since
/// the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime {
    /// Whole seconds since the Unix epoch (may be negative).
    pub secs: i64,
    /// Nanoseconds within the second, always below 1 000 000 000.
    pub nanos: u32,
}

/// A time string that does not fit the configured `time_format`.
#[derive(Debug, thiserror::Error)]
#[error("time value {value:?} does not match time_format {format:?}: {reason}")]
pub struct TimeParseError {
    /// The text that was parsed.
    pub value: String,
    /// The Fluentd (Ruby strftime) format it was parsed with.
    pub format: String,
    /// What chrono reported.
    pub reason: String,
}

impl EventTime {
    /// Builds a time from seconds and nanoseconds; nanoseconds of a second or more carry into `secs`.
    pub fn new(secs: i64, nanos: u32) -> Self {
        let carry = i64::from(nanos) / NANOS_PER_SEC;
        let rest = i64::from(nanos) % NANOS_PER_SEC;
        Self { secs: secs.saturating_add(carry), nanos: rest as u32 }
    }

    /// Builds a time from milliseconds since the Unix epoch.
    pub fn from_millis(millis: i64) -> Self {
        let secs = millis.div_euclid(1000);
        let nanos = (millis.rem_euclid(1000) * 1_000_000) as u32;
        Self { secs, nanos }
    }

    /// Milliseconds since the Unix epoch (sub-millisecond digits are truncated).
    pub fn as_millis(&self) -> i64 {
        self.secs.saturating_mul(1000).saturating_add(i64::from(self.nanos / 1_000_000))
    }

    /// Builds a time from fractional seconds since the epoch, as sent by Fluentd clients that use floats.
    /// Returns `None` for NaN, infinities and values outside the `i64` second range.
    pub fn from_float_secs(secs: f64) -> Option<Self> {
        if !secs.is_finite() || secs.abs() >= 9.2e18 {
            return None;
        }
        let whole = secs.floor();
        let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
        Some(Self { secs: whole as i64, nanos })
    }

    /// This time as fractional seconds since the epoch (Fluentd's `time_type float`).
    pub fn as_float_secs(&self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }

    /// This time as a UTC `chrono` date-time, if it is inside chrono's range.
    pub fn to_datetime(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.secs, self.nanos)
    }

    /// The current wall-clock time. Only live-mode listeners (the Forward and HTTP servers) may call this,
    /// for events that arrive without a time; routing and simulation code must never do so.
    pub fn now_wall() -> Self {
        let now = Utc::now();
        Self { secs: now.timestamp(), nanos: now.timestamp_subsec_nanos() }
    }

    /// Formats this time in UTC with a Fluentd (Ruby `strftime`) format, e.g. `%Y-%m-%dT%H:%M:%S.%3NZ`.
    /// Times outside chrono's range format as the bare seconds value.
    pub fn format(&self, ruby_format: &str) -> String {
        match self.to_datetime() {
            Some(dt) => dt.format(&ruby_to_chrono_format(ruby_format)).to_string(),
            None => self.secs.to_string(),
        }
    }

    /// Parses `value` with a Fluentd (Ruby `strptime`) format. A format without a UTC offset (`%z`) is
    /// read as UTC. Fractional seconds after a dot (`.%N`, `.%3N`, `.%L`) accept any number of digits, as
    /// Ruby does.
    pub fn parse(ruby_format: &str, value: &str) -> Result<Self, TimeParseError> {
        let chrono_format = ruby_to_chrono_parse_format(ruby_format);
        let error = |reason: String| TimeParseError {
            value: value.to_string(),
            format: ruby_format.to_string(),
            reason,
        };
        let parsed = match DateTime::parse_from_str(value, &chrono_format) {
            Ok(dt) => dt.with_timezone(&Utc),
            Err(with_offset) => match NaiveDateTime::parse_from_str(value, &chrono_format) {
                Ok(naive) => Utc.from_utc_datetime(&naive),
                Err(naive_err) if ruby_format.contains("%z") => {
                    return Err(error(format!("{with_offset}; {naive_err}")));
                }
                Err(naive_err) => return Err(error(naive_err.to_string())),
            },
        };
        Ok(Self { secs: parsed.timestamp(), nanos: parsed.timestamp_subsec_nanos() })
    }
}

/// Translates a Ruby `strftime` format to a chrono one for formatting: `%N` (9 digits), `%3N`, `%6N`,
/// `%9N` and `%L` (milliseconds) become chrono's `%f` variants; everything else is passed through.
pub fn ruby_to_chrono_format(ruby: &str) -> String {
    translate_format(ruby, false)
}

/// Like [`ruby_to_chrono_format`] but for parsing: a dot followed by a fraction specifier becomes
/// chrono's `%.f`, which accepts any number of fractional digits.
fn ruby_to_chrono_parse_format(ruby: &str) -> String {
    translate_format(ruby, true)
}

fn translate_format(ruby: &str, parsing: bool) -> String {
    let chars: Vec<char> = ruby.chars().collect();
    let mut out = String::with_capacity(ruby.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Ruby allows a width before N: %3N, %6N, %9N.
        let mut j = i + 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        let width: String = chars[i + 1..j].iter().collect();
        let spec = chars.get(j).copied();
        let fraction_digits = match spec {
            Some('N') => Some(match width.as_str() {
                "" => "9",
                "1" | "2" | "3" => "3",
                "4" | "5" | "6" => "6",
                _ => "9",
            }),
            Some('L') if width.is_empty() => Some("3"),
            _ => None,
        };
        match fraction_digits {
            Some(digits) => {
                if parsing {
                    if out.ends_with('.') {
                        out.pop();
                        out.push_str("%.f");
                    } else {
                        out.push_str("%f");
                    }
                } else {
                    out.push('%');
                    out.push_str(digits);
                    out.push('f');
                }
                i = j + 1;
            }
            None => {
                // `%%` and any other specifier are copied unchanged (including a width, which chrono
                // understands for most numeric specifiers).
                out.extend(&chars[i..=j.min(chars.len() - 1)]);
                i = j + 1;
            }
        }
    }
    out
}

/// One Fluentd event: a tag, a time and a JSON-object record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Dot-separated routing tag, e.g. `com.chaoslab.nifi.platform`.
    pub tag: String,
    /// When the event happened.
    pub time: EventTime,
    /// The record's fields.
    pub record: Map<String, Value>,
}

impl LogEvent {
    /// Builds an event.
    pub fn new(tag: impl Into<String>, time: EventTime, record: Map<String, Value>) -> Self {
        Self { tag: tag.into(), time, record }
    }

    /// The record's value for `key` as a string, if it is one.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.record.get(key).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_including_negative() {
        let t = EventTime::from_millis(1_582_320_002_991);
        assert_eq!(t, EventTime { secs: 1_582_320_002, nanos: 991_000_000 });
        assert_eq!(t.as_millis(), 1_582_320_002_991);
        let before_epoch = EventTime::from_millis(-1);
        assert_eq!(before_epoch, EventTime { secs: -1, nanos: 999_000_000 });
        assert_eq!(before_epoch.as_millis(), -1);
    }

    #[test]
    fn new_carries_nanoseconds() {
        assert_eq!(EventTime::new(5, 1_500_000_000), EventTime { secs: 6, nanos: 500_000_000 });
    }

    #[test]
    fn float_seconds() {
        let t = EventTime::from_float_secs(1_582_320_002.5).unwrap();
        assert_eq!(t, EventTime { secs: 1_582_320_002, nanos: 500_000_000 });
        assert!(EventTime::from_float_secs(f64::NAN).is_none());
        assert!((t.as_float_secs() - 1_582_320_002.5).abs() < 1e-6);
    }

    #[test]
    fn formats_ruby_fraction_specifiers() {
        let t = EventTime::new(1_582_320_002, 991_123_456);
        assert_eq!(t.format("%Y-%m-%dT%H:%M:%S.%3NZ"), "2020-02-21T21:20:02.991Z");
        assert_eq!(t.format("%Y-%m-%dT%H:%M:%S.%NZ"), "2020-02-21T21:20:02.991123456Z");
        assert_eq!(t.format("%H:%M:%S.%L"), "21:20:02.991");
        assert_eq!(t.format("%Y%m%d"), "20200221");
        assert_eq!(t.format("100%% %s"), "100% 1582320002");
    }

    #[test]
    fn parses_fractions_of_any_length() {
        let f = "%Y-%m-%dT%H:%M:%S.%NZ";
        assert_eq!(
            EventTime::parse(f, "2020-02-21T21:20:02.991Z").unwrap(),
            EventTime::new(1_582_320_002, 991_000_000)
        );
        assert_eq!(
            EventTime::parse(f, "2020-02-21T21:20:02.991000001Z").unwrap(),
            EventTime::new(1_582_320_002, 991_000_001)
        );
        assert!(EventTime::parse(f, "21/02/2020").is_err());
    }

    #[test]
    fn parses_epoch_seconds_and_offsets() {
        assert_eq!(EventTime::parse("%s", "1582320002").unwrap(), EventTime::new(1_582_320_002, 0));
        assert_eq!(
            EventTime::parse("%Y-%m-%dT%H:%M:%S%z", "2020-02-21T22:20:02+0100").unwrap(),
            EventTime::new(1_582_320_002, 0)
        );
    }
}
