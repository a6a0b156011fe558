//! Ruby regular expressions (Fluentd's `/…/flags` parameters) for the `regex` crate.

use ::regex::Regex;

/// Compiles a Fluentd regexp parameter (`/…/flags`, or a bare pattern) written for Ruby's engine.
///
/// Ruby's `^` and `$` always match at line boundaries, so the pattern runs in multi-line mode; Ruby's
/// `m` flag (dot matches newline) becomes `s`. Escaped punctuation that the `regex` crate rejects (`\/`,
/// `\:`) is unescaped, `\Z` becomes "end, or before a final newline", and `\h`/`\H` become hex-digit
/// classes. Look-around and back-references are not available and are reported as errors.
pub fn ruby_regex(value: &str) -> Result<Regex, String> {
    let (source, flags) =
        match value.strip_prefix('/').and_then(|body| body.rfind('/').map(|end| (body, end))) {
            Some((body, end)) if body[end + 1..].chars().all(|c| matches!(c, 'i' | 'm' | 'x')) => {
                (&body[..end], &body[end + 1..])
            }
            _ => (value, ""),
        };
    let mut translated = String::from("(?m");
    for flag in flags.chars() {
        translated.push(match flag {
            'm' => 's',
            other => other,
        });
    }
    translated.push(')');
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                return Err(format!("pattern {value:?} ends with a back-slash"));
            };
            match next {
                'Z' if !in_class => translated.push_str(r"(?:\n?\z)"),
                'h' => translated.push_str(if in_class { "0-9a-fA-F" } else { "[0-9a-fA-F]" }),
                'H' if !in_class => translated.push_str("[^0-9a-fA-F]"),
                p if p.is_ascii_punctuation() => translated.push_str(&regex::escape(&p.to_string())),
                other => {
                    translated.push('\\');
                    translated.push(other);
                }
            }
            i += 2;
            continue;
        }
        if c == '[' && !in_class {
            in_class = true;
            translated.push(c);
            // A `]` or `^]` right after the opening bracket is literal.
            if chars.get(i + 1) == Some(&'^') {
                translated.push('^');
                i += 1;
            }
            if chars.get(i + 1) == Some(&']') {
                translated.push_str(r"\]");
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == ']' && in_class {
            in_class = false;
        }
        translated.push(c);
        i += 1;
    }
    Regex::new(&translated).map_err(|e| format!("invalid regular expression {value:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_regex_translation() {
        let hadoop = ruby_regex(
            r"/^(\d{2}\/\d{2}\/\d{2}\s+[\d|\:]+)\s+(?<level>\S+)\s(?<logger>\S+):\s(?<message>[\s|\S]+)$/",
        )
        .unwrap();
        let caps = hadoop.captures("20/02/21 21:20:02 INFO namenode.NameNode: STARTUP_MSG: x").unwrap();
        assert_eq!(&caps["level"], "INFO");
        assert_eq!(&caps["logger"], "namenode.NameNode");
        assert_eq!(&caps["message"], "STARTUP_MSG: x");
        let nifi = ruby_regex(r"/^ConsumeMQTT\[.*\] Connection to tcp:\/\/[^\s]+ lost .*$/").unwrap();
        assert!(nifi.is_match("ConsumeMQTT[id=1] Connection to tcp://mqtt:1883 lost due to: x"));
        assert!(ruby_regex("/ABC/i").unwrap().is_match("xabcx"));
        assert!(ruby_regex("/a.b/m").unwrap().is_match("a\nb"));
        assert!(!ruby_regex("/a.b/").unwrap().is_match("a\nb"));
        assert!(ruby_regex(r"^b$").unwrap().is_match("a\nb\nc"), "Ruby anchors are per line");
        assert!(ruby_regex(r"/x\Z/").unwrap().is_match("x\n"));
        assert!(ruby_regex(r"/^\h+$/").unwrap().is_match("00ff"));
        assert!(ruby_regex(r"/[]a]/").unwrap().is_match("]"));
    }
}
