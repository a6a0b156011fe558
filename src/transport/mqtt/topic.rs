//! MQTT 3.1.1 topic names and topic filters: validation (§4.7.1, §4.7.3) and matching (§4.7).
//!
//! Every MQTT session kind checks names and filters here, so a bad topic is rejected the same way whichever
//! broker is in use, and the in-process broker routes exactly as a real one would.

use crate::transport::mqtt::error::MqttError;

/// The longest topic name or filter MQTT can encode (a two-byte length prefix).
const MAX_TOPIC_BYTES: usize = 65_535;

/// Checks what topic names and filters have in common: non-empty, short enough, no NUL character.
fn check_common(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err(format!("is {} bytes long, the limit is {MAX_TOPIC_BYTES}", text.len()));
    }
    if let Some(at) = text.find('\0') {
        return Err(format!("contains a NUL character at byte {at}"));
    }
    Ok(())
}

/// Checks a topic name as used for publishing: non-empty, at most 65535 bytes, no NUL, no wildcard.
pub fn validate_topic_name(topic: &str) -> Result<(), MqttError> {
    let invalid = |reason: String| MqttError::InvalidTopic { topic: topic.to_owned(), reason };
    check_common(topic).map_err(invalid)?;
    if let Some(at) = topic.find(['+', '#']) {
        return Err(invalid(format!("contains the wildcard {:?} at byte {at}", &topic[at..at + 1])));
    }
    Ok(())
}

/// Checks a topic filter as used for subscribing: non-empty, at most 65535 bytes, no NUL, `+` only as a
/// whole level, `#` only as the whole last level.
pub fn validate_filter(filter: &str) -> Result<(), MqttError> {
    let invalid = |reason: String| MqttError::InvalidFilter { filter: filter.to_owned(), reason };
    check_common(filter).map_err(invalid)?;
    let level_count = filter.split('/').count();
    for (index, level) in filter.split('/').enumerate() {
        let position = index + 1;
        if level.contains('#') && (level != "#" || position != level_count) {
            return Err(invalid(format!(
                "'#' must be the whole last level, found {level:?} at level {position}"
            )));
        }
        if level.contains('+') && level != "+" {
            return Err(invalid(format!("'+' must be a whole level, found {level:?} at level {position}")));
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter` (MQTT 3.1.1 §4.7).
///
/// `+` matches exactly one level (which may be empty), `#` matches the parent level and any number of
/// levels below it (so `sport/#` matches `sport`), and topics starting with `$` are not matched by a
/// filter whose first level is a wildcard. Both arguments are expected to be valid (see
/// [`validate_filter`] and [`validate_topic_name`]); for invalid input the result is unspecified.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(wanted), Some(level)) if wanted == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_topic_names_are_accepted() {
        for topic in ["sport/tennis/player1", "/", "a", "sport//x", "$SYS/broker", "with space/ü", "/finance"]
        {
            assert_eq!(validate_topic_name(topic), Ok(()), "{topic:?}");
        }
        assert_eq!(validate_topic_name(&"a".repeat(MAX_TOPIC_BYTES)), Ok(()));
    }

    #[test]
    fn invalid_topic_names_are_rejected_with_the_reason() {
        for (topic, reason_part) in [
            ("", "empty"),
            ("sport/+", "wildcard \"+\" at byte 6"),
            ("sport/#", "wildcard \"#\""),
            ("a+b", "wildcard"),
            ("nul\0here", "NUL character at byte 3"),
        ] {
            match validate_topic_name(topic) {
                Err(MqttError::InvalidTopic { topic: named, reason }) => {
                    assert_eq!(named, topic);
                    assert!(reason.contains(reason_part), "{topic:?}: {reason}");
                }
                other => panic!("{topic:?} gave {other:?}"),
            }
        }
        let too_long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert!(matches!(validate_topic_name(&too_long), Err(MqttError::InvalidTopic { .. })));
    }

    #[test]
    fn valid_filters_are_accepted() {
        for filter in [
            "#",
            "+",
            "sport/#",
            "sport/tennis/#",
            "+/tennis/#",
            "sport/+/player1",
            "+/+",
            "/+",
            "a//b",
            "$SYS/#",
        ] {
            assert_eq!(validate_filter(filter), Ok(()), "{filter:?}");
        }
    }

    #[test]
    fn invalid_filters_are_rejected_with_the_reason() {
        for (filter, reason_part) in [
            ("", "empty"),
            ("sport/tennis#", "'#' must be the whole last level, found \"tennis#\" at level 2"),
            ("sport/tennis/#/ranking", "'#' must be the whole last level, found \"#\" at level 3"),
            ("#/", "'#' must be the whole last level"),
            ("sport+", "'+' must be a whole level, found \"sport+\" at level 1"),
            ("sport/+x/a", "'+' must be a whole level"),
            ("a/\0", "NUL"),
        ] {
            match validate_filter(filter) {
                Err(MqttError::InvalidFilter { filter: named, reason }) => {
                    assert_eq!(named, filter);
                    assert!(reason.contains(reason_part), "{filter:?}: {reason}");
                }
                other => panic!("{filter:?} gave {other:?}"),
            }
        }
    }

    /// The examples of MQTT 3.1.1 §4.7.1.2 (multi-level wildcard).
    #[test]
    fn multi_level_wildcard_follows_the_spec_examples() {
        for topic in
            ["sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/score/wimbledon"]
        {
            assert!(matches("sport/tennis/player1/#", topic), "{topic}");
        }
        assert!(matches("sport/#", "sport"), "# also matches the parent level");
        assert!(matches("sport/#", "sport/"));
        assert!(matches("#", "sport/tennis"));
        assert!(matches("#", "/"));
        assert!(!matches("sport/tennis/#", "sport/tennisx"));
        assert!(!matches("sport/#", "sports"));
    }

    /// The examples of MQTT 3.1.1 §4.7.1.3 (single-level wildcard).
    #[test]
    fn single_level_wildcard_follows_the_spec_examples() {
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"), "+ matches an empty level");
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+/tennis/#", "sport/tennis/player1"));
        assert!(matches("sport/+/player1", "sport/tennis/player1"));
        assert!(matches("a/+/c", "a//c"));
        assert!(!matches("a/+/c", "a/c"));
    }

    /// The examples of MQTT 3.1.1 §4.7.2 (topics beginning with `$`).
    #[test]
    fn dollar_topics_are_not_matched_by_a_leading_wildcard() {
        assert!(!matches("#", "$SYS/broker/clients"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(!matches("+", "$SYS"));
        assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(matches("a/#", "a/$SYS"), "only a leading $ is special");
    }

    #[test]
    fn literal_filters_match_exactly_and_case_sensitively() {
        assert!(matches("sport/tennis", "sport/tennis"));
        assert!(!matches("sport/tennis", "Sport/tennis"));
        assert!(!matches("sport/tennis", "sport/tennis/"));
        assert!(!matches("sport/tennis", "sport"));
        assert!(!matches("sport", "sport/tennis"));
        assert!(matches("/", "/"));
        assert!(!matches("/", "//"));
    }
}
