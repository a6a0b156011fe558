//! Alert templates: the part of Go's `text/template` that Prometheus alert labels and annotations use —
//! `{{ $labels.x }}`, `{{ $value }}`, pipelines, `humanize*`, `toUpper`/`toLower`, `printf`, comments
//! and whitespace trimming.

use crate::monitoring::tsdb::{Labels, format_float_g, is_valid_label_name};

/// A parsed label/annotation template.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Vec<Command>),
}

/// One stage of a pipeline: an operand, or a function applied to its arguments (plus the piped value).
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Operand(Operand),
    Call(Func, Vec<Operand>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Value,
    Label(String),
    Str(String),
    Num(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Humanize,
    Humanize1024,
    HumanizePercentage,
    HumanizeDuration,
    ToUpper,
    ToLower,
    Printf,
}

#[derive(Debug, Clone, PartialEq)]
enum Datum {
    Num(f64),
    Str(String),
}

impl Datum {
    fn render(&self) -> String {
        match self {
            Datum::Num(v) => format_float_g(*v, None),
            Datum::Str(s) => s.clone(),
        }
    }

    fn to_float(&self) -> Result<f64, String> {
        match self {
            Datum::Num(v) => Ok(*v),
            Datum::Str(s) => s.trim().parse().map_err(|_| format!("cannot convert {s:?} to a number")),
        }
    }
}

impl Template {
    /// Parses a template; the error says what is not supported or malformed.
    pub(super) fn parse(src: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut trim_next_text = false;
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                parts.push(Part::Text(trim_start_if(rest, trim_next_text).to_string()));
                break;
            };
            let mut text = trim_start_if(&rest[..open], trim_next_text);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| "unclosed action (missing `}}`)".to_string())?;
            let mut action = &after[..close];
            if let Some(a) = action.strip_prefix('-').filter(|a| a.starts_with(char::is_whitespace)) {
                text = text.trim_end();
                action = a;
            }
            trim_next_text = false;
            if let Some(a) = action.strip_suffix('-').filter(|a| a.ends_with(char::is_whitespace)) {
                trim_next_text = true;
                action = a;
            }
            if !text.is_empty() {
                parts.push(Part::Text(text.to_string()));
            }
            let action = action.trim();
            if !(action.starts_with("/*") && action.ends_with("*/")) {
                parts.push(Part::Action(parse_pipeline(action)?));
            }
            rest = &after[close + 2..];
        }
        Ok(Template { parts })
    }

    /// Expands the template for one result sample. An expansion error yields Prometheus' text
    /// `<error expanding template: ...>`.
    pub(super) fn render(&self, labels: &Labels, value: f64) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(commands) => match run_pipeline(commands, labels, value) {
                    Ok(d) => out.push_str(&d.render()),
                    Err(e) => {
                        tracing::warn!("template expansion failed: {e}");
                        return format!("<error expanding template: {e}>");
                    }
                },
            }
        }
        out
    }
}

fn trim_start_if(s: &str, trim: bool) -> &str {
    if trim { s.trim_start() } else { s }
}

fn tokenize(action: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            tokens.push("|".to_string());
        } else if c == '"' || c == '`' {
            chars.next();
            let mut s = String::from('"');
            loop {
                match chars.next() {
                    None => return Err("unterminated string".into()),
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(other),
                        None => return Err("unterminated string".into()),
                    },
                    Some(other) => s.push(other),
                }
            }
            tokens.push(s);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(word);
        }
    }
    Ok(tokens)
}

fn parse_operand(token: &str) -> Result<Operand, String> {
    if let Some(s) = token.strip_prefix('"') {
        return Ok(Operand::Str(s.to_string()));
    }
    match token {
        "$value" | ".Value" => return Ok(Operand::Value),
        _ => {}
    }
    if let Some(name) = token.strip_prefix("$labels.").or_else(|| token.strip_prefix(".Labels.")) {
        return if is_valid_label_name(name) {
            Ok(Operand::Label(name.to_string()))
        } else {
            Err(format!("invalid label reference `{token}`"))
        };
    }
    if let Ok(n) = token.parse::<f64>() {
        return Ok(Operand::Num(n));
    }
    Err(format!(
        "unsupported template operand `{token}` (supported: $value, $labels.<name>, strings, numbers)"
    ))
}

fn parse_func(token: &str) -> Option<Func> {
    Some(match token {
        "humanize" => Func::Humanize,
        "humanize1024" => Func::Humanize1024,
        "humanizePercentage" => Func::HumanizePercentage,
        "humanizeDuration" => Func::HumanizeDuration,
        "toUpper" => Func::ToUpper,
        "toLower" => Func::ToLower,
        "printf" => Func::Printf,
        _ => return None,
    })
}

fn parse_pipeline(action: &str) -> Result<Vec<Command>, String> {
    if action.is_empty() {
        return Err("empty action `{{ }}`".into());
    }
    let tokens = tokenize(action)?;
    let mut commands = Vec::new();
    for (i, stage) in tokens.split(|t| t == "|").enumerate() {
        let Some((head, args)) = stage.split_first() else {
            return Err(format!("missing command in pipeline `{action}`"));
        };
        let command = match parse_func(head) {
            Some(func) => {
                let args = args.iter().map(|a| parse_operand(a)).collect::<Result<Vec<_>, _>>()?;
                let arity = args.len() + usize::from(i > 0);
                let ok = if func == Func::Printf {
                    arity >= 1 && matches!(args.first(), Some(Operand::Str(_)))
                } else {
                    arity == 1
                };
                if !ok {
                    return Err(format!("wrong number or type of arguments for `{head}` in `{action}`"));
                }
                Command::Call(func, args)
            }
            None if i > 0 => return Err(format!("`{head}` is not a supported template function")),
            None if !args.is_empty() => return Err(format!("`{head}` is not a supported template function")),
            None => Command::Operand(parse_operand(head)?),
        };
        commands.push(command);
    }
    Ok(commands)
}

fn run_pipeline(commands: &[Command], labels: &Labels, value: f64) -> Result<Datum, String> {
    let resolve = |o: &Operand| match o {
        Operand::Value => Datum::Num(value),
        Operand::Label(name) => Datum::Str(labels.get(name).cloned().unwrap_or_default()),
        Operand::Str(s) => Datum::Str(s.clone()),
        Operand::Num(n) => Datum::Num(*n),
    };
    let mut piped: Option<Datum> = None;
    for command in commands {
        let result = match command {
            Command::Operand(o) => resolve(o),
            Command::Call(func, args) => {
                let mut args: Vec<Datum> = args.iter().map(resolve).collect();
                args.extend(piped.take());
                call(*func, &args)?
            }
        };
        piped = Some(result);
    }
    piped.ok_or_else(|| "empty pipeline".to_string())
}

fn call(func: Func, args: &[Datum]) -> Result<Datum, String> {
    let one = || args.first().ok_or_else(|| "missing argument".to_string());
    let g4 = |v: f64| format_float_g(v, Some(4));
    Ok(Datum::Str(match func {
        Func::Humanize => {
            let v = one()?.to_float()?;
            humanize(v)
        }
        Func::Humanize1024 => {
            let mut v = one()?.to_float()?;
            if v.abs() <= 1.0 || !v.is_finite() {
                return Ok(Datum::Str(g4(v)));
            }
            let mut prefix = "";
            for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
                if v.abs() < 1024.0 {
                    break;
                }
                prefix = p;
                v /= 1024.0;
            }
            format!("{}{prefix}", g4(v))
        }
        Func::HumanizePercentage => format!("{}%", g4(one()?.to_float()? * 100.0)),
        Func::HumanizeDuration => humanize_duration(one()?.to_float()?),
        Func::ToUpper | Func::ToLower => match one()? {
            Datum::Str(s) if func == Func::ToUpper => s.to_uppercase(),
            Datum::Str(s) => s.to_lowercase(),
            Datum::Num(_) => return Err("toUpper/toLower need a string".into()),
        },
        Func::Printf => match args.split_first() {
            Some((Datum::Str(format), rest)) => go_sprintf(format, rest),
            _ => return Err("printf needs a format string".into()),
        },
    }))
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
fn humanize(mut v: f64) -> String {
    let g4 = |v: f64| format_float_g(v, Some(4));
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus' `humanizeDuration` (seconds in, `1d 2h 3m 4s` out).
fn humanize_duration(mut v: f64) -> String {
    let g4 = |v: f64| format_float_g(v, Some(4));
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let total = v as i64;
        let (days, hours, minutes, seconds) =
            (total / 86_400, (total / 3600) % 24, (total / 60) % 60, total % 60);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Go's `fmt.Sprintf` for the verbs alert templates use: `%s %v %d %f %g %e` with an optional
/// `.precision`, and `%%`. A mismatched argument prints like Go (`%!d(float64=1.5)`).
fn go_sprintf(format: &str, args: &[Datum]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            precision = Some(digits.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let bad = |arg: &Datum| match arg {
            Datum::Num(v) => format!("%!{verb}(float64={})", format_float_g(*v, None)),
            Datum::Str(s) => format!("%!{verb}(string={s})"),
        };
        out.push_str(&match (verb, arg) {
            ('s' | 'v', Datum::Str(s)) => s.clone(),
            ('v', Datum::Num(v)) => format_float_g(*v, None),
            ('f' | 'F', Datum::Num(v)) => format!("{v:.*}", precision.unwrap_or(6)),
            ('g', Datum::Num(v)) => format_float_g(*v, precision),
            ('e', Datum::Num(v)) => {
                let s = format!("{v:.*e}", precision.unwrap_or(6));
                match s.split_once('e') {
                    Some((m, e)) => {
                        let e: i32 = e.parse().unwrap_or(0);
                        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                    }
                    None => s,
                }
            }
            _ => bad(arg),
        });
    }
    let extra: Vec<String> = args.map(|a| a.render()).collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn templates_expand_like_prometheus() {
        let data = labels(&[("instance", "host:9100"), ("job", "node")]);
        let render = |src: &str, value: f64| Template::parse(src).unwrap().render(&data, value);
        assert_eq!(
            render("{{ $labels.instance }} / {{ .Labels.job }} = {{ $value }}", 0.25),
            "host:9100 / node = 0.25"
        );
        assert_eq!(render("{{ $labels.missing }}|", 1.0), "|");
        assert_eq!(render("{{ $value }}", 1234567.0), "1.234567e+06");
        assert_eq!(render("{{ humanize $value }}", 1234567.0), "1.235M");
        assert_eq!(render("{{ $value | humanize }}", 0.0012), "1.2m");
        assert_eq!(render("{{ humanize 0 }}", 0.0), "0");
        assert_eq!(render("{{ humanize1024 $value }}", 2048.0), "2ki");
        assert_eq!(render("{{ humanizePercentage $value }}", 0.1234), "12.34%");
        assert_eq!(render("{{ humanizeDuration $value }}", 93784.0), "1d 2h 3m 4s");
        assert_eq!(render("{{ humanizeDuration $value }}", 0.25), "250ms");
        assert_eq!(render(r#"{{ printf "%.2f" $value }} {{ $labels.job | toUpper }}"#, 1.23456), "1.23 NODE");
        assert_eq!(render("a  {{- $labels.job -}}  b{{/* note */}}", 0.0), "anodeb");
        assert_eq!(
            render("{{ humanize $labels.job }}", 0.0),
            "<error expanding template: cannot convert \"node\" to a number>"
        );
        assert!(Template::parse("{{ $labels.job ").is_err());
        assert!(Template::parse("{{ range $labels }}").is_err());
        assert!(Template::parse("{{ $externalLabels.x }}").is_err());
    }
}
