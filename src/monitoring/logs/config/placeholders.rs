//! `${…}` placeholders in `<record>` values: Ruby expressions (record_modifier, record_transformer with
//! `enable_ruby`) or record_transformer's fixed placeholders, in the subset chaoslab implements.

use super::{RecordPath, Template, TemplatePart, parse_bracket_keys};

/// Which placeholder language a `<record>` value uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlaceholderMode {
    /// Ruby expressions (record_modifier, record_transformer with `enable_ruby`): we implement
    /// `record['k']`, `record["k"]`, `tag`, `tag_parts[N]`, `tag_prefix[N]`, `tag_suffix[N]`, `time`.
    Ruby,
    /// record_transformer's fixed placeholders: `${record["k"]}` (double quotes only), `${tag}`,
    /// `${tag_parts[N]}`, `${tag_prefix[N]}`, `${tag_suffix[N]}`, `${time}`.
    Plain,
}

pub(super) fn parse_template(text: &str, mode: PlaceholderMode) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(TemplatePart::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated ${…} placeholder".to_string());
        };
        parts.push(parse_placeholder(after[..end].trim(), mode)?);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_string()));
    }
    Ok(Template { parts })
}

fn parse_placeholder(expr: &str, mode: PlaceholderMode) -> Result<TemplatePart, String> {
    let indexed = |name: &str| -> Option<Result<i64, String>> {
        let inner = expr.strip_prefix(name)?.strip_prefix('[')?.strip_suffix(']')?;
        Some(inner.trim().parse::<i64>().map_err(|_| format!("`{expr}` needs an integer index")))
    };
    if expr == "tag" {
        return Ok(TemplatePart::Tag);
    }
    if expr == "time" {
        return Ok(TemplatePart::Time);
    }
    if let Some(index) = indexed("tag_parts") {
        return index.map(TemplatePart::TagPart);
    }
    if let Some(index) = indexed("tag_prefix") {
        return index.map(TemplatePart::TagPrefix);
    }
    if let Some(index) = indexed("tag_suffix") {
        return index.map(TemplatePart::TagSuffix);
    }
    if expr == "hostname" {
        return Err("the hostname placeholder is not supported: chaoslab has no host name".to_string());
    }
    if let Some(path) = expr.strip_prefix("record") {
        let keys = parse_bracket_keys(path);
        return match (mode, keys) {
            (PlaceholderMode::Ruby, Some(keys)) => Ok(TemplatePart::Record(RecordPath { keys })),
            (PlaceholderMode::Plain, Some(keys)) if path.starts_with("[\"") && keys.len() == 1 => {
                Ok(TemplatePart::Record(RecordPath { keys }))
            }
            (PlaceholderMode::Plain, _) => Err(format!(
                "record_transformer without enable_ruby only knows ${{record[\"key\"]}} (double quotes, one level); \
                 Fluentd would insert an empty value for ${{{expr}}}"
            )),
            (PlaceholderMode::Ruby, None) => Err(format!("unsupported Ruby expression ${{{expr}}}")),
        };
    }
    Err(format!(
        "unsupported placeholder ${{{expr}}}: implemented are ${{record['key']}}, ${{tag}}, ${{tag_parts[N]}}, \
         ${{tag_prefix[N]}}, ${{tag_suffix[N]}} and ${{time}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = parse_template("x ${record['a']}-${tag_parts[-1]} ${tag}", PlaceholderMode::Ruby).unwrap();
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Text("x ".into()),
                TemplatePart::Record(RecordPath::top("a")),
                TemplatePart::Text("-".into()),
                TemplatePart::TagPart(-1),
                TemplatePart::Text(" ".into()),
                TemplatePart::Tag,
            ]
        );
        assert!(parse_template("${record[\"a\"]}", PlaceholderMode::Plain).is_ok());
        assert!(parse_template("${record['a']}", PlaceholderMode::Plain).is_err());
        assert!(parse_template("${hostname}", PlaceholderMode::Ruby).is_err());
        assert!(parse_template("${tag", PlaceholderMode::Ruby).is_err());
    }
}
