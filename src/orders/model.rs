//! The Pokémon order record: its five states, the input of a new order, the stored order and its two
//! JSON shapes.
//!
//! The reference's `poke-order-api` shows an order in two ways, and consumers written against it
//! compare them byte for byte, so both are reproduced exactly:
//! - the HTTP API (FastAPI) serves `{"id","user_id","pokemon","country","price","state","timestamp"}` with
//!   an ISO timestamp, `"2024-08-14T05:38:58.922008"`: the serde impls of [`Order`];
//! - the Kafka message is Python's `json.dumps(order, default=str)`: `", "` and `": "` separators,
//!   ASCII-only strings, `repr` floats (`246.0`), `str(datetime)` with a space: [`Order::to_kafka_json`].
//!
//! Python leaves the microseconds out of both timestamps when they are zero (`datetime.isoformat()` and
//! `str(datetime)` do), and so does this module. Parsing accepts either separator and either precision.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{Datelike, NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize};

/// Where an order is in its life, as the reference's `OrderState` enum (PostgreSQL type `orderstate`).
///
/// The declaration order is the reference's and the one [`Ord`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    /// Created, waiting for the fraud check's verdict.
    Pending,
    /// The fraud check refused it.
    Rejected,
    /// Declared by the reference but never set by any of its components.
    Failed,
    /// The fraud check accepted it.
    Success,
    /// Still pending after the expiry time: the unwanted outcome the chaos experiments look for.
    Reversed,
}

impl OrderState {
    /// The five states, in declaration order.
    pub const ALL: [OrderState; 5] = [
        OrderState::Pending,
        OrderState::Rejected,
        OrderState::Failed,
        OrderState::Success,
        OrderState::Reversed,
    ];

    /// The lowercase name used in JSON, SQL and Kafka messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Rejected => "rejected",
            OrderState::Failed => "failed",
            OrderState::Success => "success",
            OrderState::Reversed => "reversed",
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the five order states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order state {0:?}: expected one of pending, rejected, failed, success, reversed")]
pub struct ParseOrderStateError(pub String);

impl FromStr for OrderState {
    type Err = ParseOrderStateError;

    /// Parses the exact lowercase name, as the reference's enum values are matched.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ParseOrderStateError(s.to_string()))
    }
}

/// The fields a client sends to create an order (the reference's `PokeOrderCreate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrder {
    /// Who orders.
    pub user_id: i64,
    /// Lowercase PokeAPI name, e.g. `rapidash`.
    pub pokemon: String,
    /// Country name, e.g. `Germany`.
    pub country: String,
    /// Price; the load generator sends whole numbers from 0 to 300.
    pub price: f64,
}

/// A stored order (the reference's `PokeOrder`); serde gives the API's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Database-assigned id.
    pub id: i64,
    /// Who ordered.
    pub user_id: i64,
    /// Lowercase PokeAPI name.
    pub pokemon: String,
    /// Country name.
    pub country: String,
    /// Price.
    pub price: f64,
    /// Current state.
    pub state: OrderState,
    /// Creation time, naive UTC, microsecond precision.
    #[serde(with = "api_timestamp")]
    pub timestamp: NaiveDateTime,
}

impl Order {
    /// The Kafka message the reference's API produces for this order, byte for byte:
    /// `{"id": 4054, "user_id": 2, "pokemon": "rapidash", "country": "Germany", "price": 246.0, "state": "pending", "timestamp": "2024-08-14 05:38:58.922008"}`.
    pub fn to_kafka_json(&self) -> String {
        let mut out = String::with_capacity(160);
        let _ = write!(out, "{{\"id\": {}, \"user_id\": {}, \"pokemon\": ", self.id, self.user_id);
        push_python_json_str(&mut out, &self.pokemon);
        out.push_str(", \"country\": ");
        push_python_json_str(&mut out, &self.country);
        out.push_str(", \"price\": ");
        out.push_str(&python_float_repr(self.price));
        out.push_str(", \"state\": ");
        push_python_json_str(&mut out, self.state.as_str());
        out.push_str(", \"timestamp\": ");
        push_python_json_str(&mut out, &python_datetime(&self.timestamp, ' '));
        out.push('}');
        out
    }

    /// Parses a Kafka message of the reference's shape (or the API's: both timestamp forms are accepted).
    pub fn from_kafka_json(text: &str) -> Result<Order, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// A timestamp that is neither `YYYY-MM-DD HH:MM:SS[.ffffff]` nor `YYYY-MM-DDTHH:MM:SS[.ffffff]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected YYYY-MM-DDTHH:MM:SS[.ffffff] (or a space instead of T)")]
pub struct ParseTimestampError(pub String);

/// Python's `datetime` text: `isoformat()` with `sep = 'T'`, `str()` with `sep = ' '`.
///
/// Sub-microsecond digits are dropped (Python has none); the fraction is omitted when it is zero.
pub fn python_datetime(ts: &NaiveDateTime, sep: char) -> String {
    let micros = (ts.nanosecond() / 1_000).min(999_999);
    let mut out = format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        ts.year(),
        ts.month(),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    );
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fraction]` (naive, 1 to 9 fraction digits).
pub fn parse_timestamp(text: &str) -> Result<NaiveDateTime, ParseTimestampError> {
    // Byte 10 is the date/time separator; when it is an ASCII space both slices are on char boundaries.
    let normalized = match text.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", &text[..10], &text[11..]),
        _ => text.to_string(),
    };
    NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| ParseTimestampError(text.to_string()))
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for exponents -4..16 (always with a
/// decimal point, `246.0`), scientific otherwise (`1e+16`, `1.5e-05`); `NaN`, `Infinity`, `-Infinity` as
/// `json.dumps` writes them.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: "-2.46e2", "0e0", "1e16".
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            if digits.len() > int_len {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            } else {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        }
    } else {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
    };
    format!("{sign}{body}")
}

/// Appends `text` as Python's `json.dumps` (with `ensure_ascii=True`) writes a string: every character
/// outside printable ASCII as a lowercase `\uXXXX` escape (surrogate pairs above U+FFFF).
fn push_python_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Serde for the API's timestamp: ISO with a `T`, like FastAPI; either separator is read back.
mod api_timestamp {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(ts: &NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::python_datetime(ts, 'T'))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_timestamp(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn sample() -> Order {
        Order {
            id: 4054,
            user_id: 2,
            pokemon: "rapidash".into(),
            country: "Germany".into(),
            price: 246.0,
            state: OrderState::Pending,
            timestamp: NaiveDate::from_ymd_opt(2024, 8, 14)
                .unwrap()
                .and_hms_micro_opt(5, 38, 58, 922_008)
                .unwrap(),
        }
    }

    #[test]
    fn kafka_json_matches_the_reference_message() {
        assert_eq!(
            sample().to_kafka_json(),
            r#"{"id": 4054, "user_id": 2, "pokemon": "rapidash", "country": "Germany", "price": 246.0, "state": "pending", "timestamp": "2024-08-14 05:38:58.922008"}"#
        );
    }

    #[test]
    fn api_json_has_the_fastapi_shape_and_round_trips() {
        let order = sample();
        let json = serde_json::to_string(&order).unwrap();
        assert_eq!(
            json,
            r#"{"id":4054,"user_id":2,"pokemon":"rapidash","country":"Germany","price":246.0,"state":"pending","timestamp":"2024-08-14T05:38:58.922008"}"#
        );
        assert_eq!(serde_json::from_str::<Order>(&json).unwrap(), order);
        assert_eq!(Order::from_kafka_json(&order.to_kafka_json()).unwrap(), order);
    }

    #[test]
    fn whole_seconds_drop_the_fraction_like_python() {
        let mut order = sample();
        order.timestamp = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap().and_hms_opt(3, 4, 5).unwrap();
        assert!(order.to_kafka_json().ends_with(r#""timestamp": "2024-01-02 03:04:05"}"#));
        assert_eq!(serde_json::to_value(&order).unwrap()["timestamp"], "2024-01-02T03:04:05");
        // Nanoseconds are cut to Python's microseconds, not rounded.
        order.timestamp = order.timestamp.with_nanosecond(1_999).unwrap();
        assert_eq!(python_datetime(&order.timestamp, ' '), "2024-01-02 03:04:05.000001");
    }

    #[test]
    fn timestamps_parse_in_both_forms_and_reject_garbage() {
        let expected = sample().timestamp;
        assert_eq!(parse_timestamp("2024-08-14 05:38:58.922008").unwrap(), expected);
        assert_eq!(parse_timestamp("2024-08-14T05:38:58.922008").unwrap(), expected);
        assert_eq!(
            parse_timestamp("2024-08-14T05:38:58").unwrap(),
            expected.with_nanosecond(0).unwrap(),
            "fraction is optional"
        );
        for bad in ["", "2024-08-14", "2024-08-14X05:38:58", "2024-13-14 05:38:58", "2024-08-14 05:38:58Z"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
        let err = serde_json::from_str::<Order>(
            r#"{"id":1,"user_id":2,"pokemon":"a","country":"b","price":1.0,"state":"pending","timestamp":"yesterday"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid timestamp \"yesterday\""), "{err}");
    }

    #[test]
    fn floats_follow_python_repr() {
        let cases = [
            (246.0, "246.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (-3.25, "-3.25"),
            (123456789.125, "123456789.125"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value), expected, "{value:?}");
        }
    }

    #[test]
    fn strings_are_escaped_like_json_dumps() {
        let mut order = sample();
        order.pokemon = "flabébé \"q\" \\ \n\u{7f}".into();
        order.country = "Côte d'Ivoire 🐉".into();
        let json = order.to_kafka_json();
        assert!(json.contains(r#""pokemon": "flab\u00e9b\u00e9 \"q\" \\ \n\u007f""#), "{json}");
        assert!(json.contains(r#""country": "C\u00f4te d'Ivoire \ud83d\udc09""#), "{json}");
        assert_eq!(Order::from_kafka_json(&json).unwrap(), order, "escapes read back");
    }

    #[test]
    fn states_parse_display_and_serialize_lowercase() {
        for state in OrderState::ALL {
            assert_eq!(state.to_string().parse::<OrderState>().unwrap(), state);
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{state}\""));
        }
        let err = "Pending".parse::<OrderState>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown order state \"Pending\": expected one of pending, rejected, failed, success, reversed"
        );
        assert!(serde_json::from_str::<OrderState>("\"done\"").is_err());
        assert!(OrderState::Pending < OrderState::Reversed, "declaration order");
    }
}
