//! The Fluentd v1 configuration syntax: directives, parameters, comments, quoting and `@include`.
//!
//! This turns text into an untyped tree of elements and parameters, each with its file and line; the
//! parent module gives the tree its meaning. The rules follow Fluentd's own parser (`v1_parser.rb`,
//! `literal_parser.rb`): a `#` starts a comment on its own line or after white space that follows a value; double-quoted
//! strings take Fluentd's escapes (`\n`, `\t`, `\"`, …; a back-slash before another letter or digit is an
//! error) and may span lines; single-quoted strings only unescape `\'` and `\\`; values starting with `[` or
//! `{` are JSON and may span lines (with `#` comments); `@include` splices another file in place,
//! resolved against the including file's directory, with `*`/`?` wildcards in the file name.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Fault, Origin};

/// How deeply `@include` may nest before we assume a mistake.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Parameters and child elements of one directive (or of the whole file).
#[derive(Debug, Default)]
pub(super) struct Body {
    pub(super) params: Vec<Param>,
    pub(super) elements: Vec<Element>,
}

#[derive(Debug)]
pub(super) struct Element {
    pub(super) name: String,
    pub(super) arg: String,
    pub(super) body: Body,
    pub(super) origin: Origin,
}

#[derive(Debug)]
pub(super) struct Param {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) origin: Origin,
}

impl Element {
    pub(super) fn title(&self) -> String {
        if self.arg.is_empty() { self.name.clone() } else { format!("{} {}", self.name, self.arg) }
    }
}

pub(super) struct Scanner {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    file: PathBuf,
}

impl Scanner {
    pub(super) fn new(text: &str, file: &Path) -> Self {
        Self { chars: text.chars().collect(), pos: 0, line: 1, file: file.to_path_buf() }
    }

    fn origin(&self) -> Origin {
        Origin { file: self.file.clone(), line: self.line }
    }

    fn syntax(&self, reason: impl Into<String>) -> Fault {
        Fault::Syntax { origin: self.origin(), reason: reason.into() }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn skip_to_newline(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.bump();
        }
    }

    /// Skips blank lines, indentation and whole-line comments.
    fn skip_blank(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('#') => self.skip_to_newline(),
                _ => return,
            }
        }
    }

    /// After a value or a tag: optional spaces, an optional comment, then the end of the line.
    fn expect_line_end(&mut self, after: &str) -> Result<(), Fault> {
        self.skip_spaces();
        if self.peek() == Some('#') {
            self.skip_to_newline();
        }
        if self.peek() == Some('\r') {
            self.bump();
        }
        match self.peek() {
            None => Ok(()),
            Some('\n') => {
                self.bump();
                Ok(())
            }
            Some(c) => {
                Err(self.syntax(format!("unexpected {c:?} after {after}; expected the end of the line")))
            }
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if !keep(c) {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    /// Whether the rest of the current line, from the cursor, is white space and an optional comment.
    fn rest_is_line_end(&self) -> bool {
        let mut i = self.pos;
        while let Some(&c) = self.chars.get(i) {
            match c {
                ' ' | '\t' | '\r' => i += 1,
                '\n' | '#' => return true,
                _ => return false,
            }
        }
        true
    }

    pub(super) fn parse_body(
        &mut self,
        closing: Option<&str>,
        body: &mut Body,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), Fault> {
        loop {
            self.skip_blank();
            let Some(c) = self.peek() else {
                return match closing {
                    Some(name) => Err(self.syntax(format!("end of file inside <{name}>: missing </{name}>"))),
                    None => Ok(()),
                };
            };
            if c == '<' && self.peek_at(1) == Some('/') {
                self.bump();
                self.bump();
                let name = self.take_while(is_element_name_char);
                self.skip_spaces();
                if self.peek() != Some('>') {
                    return Err(self.syntax(format!("expected '>' to close </{name}")));
                }
                self.bump();
                return match closing {
                    Some(open) if open == name => self.expect_line_end(&format!("</{name}>")),
                    Some(open) => Err(self.syntax(format!("found </{name}> while <{open}> is open"))),
                    None => Err(self.syntax(format!("</{name}> without a matching <{name}>"))),
                };
            }
            if c == '<' {
                let origin = self.origin();
                self.bump();
                let name = self.take_while(is_element_name_char);
                if name.is_empty() {
                    return Err(self.syntax("expected a directive name after '<'"));
                }
                self.skip_spaces();
                let arg = self.take_while(|c| c != '>' && c != '\n');
                if self.peek() != Some('>') {
                    return Err(self.syntax(format!("expected '>' to close <{name}")));
                }
                self.bump();
                self.expect_line_end(&format!("<{name}>"))?;
                let mut element = Element {
                    name: name.clone(),
                    arg: arg.trim_end().to_string(),
                    body: Body::default(),
                    origin,
                };
                self.parse_body(Some(&name), &mut element.body, stack)?;
                body.elements.push(element);
                continue;
            }
            let origin = self.origin();
            let key = self.take_while(|c| !c.is_whitespace());
            self.skip_spaces();
            if key == "@include" {
                let target = match self.peek() {
                    Some('"') => {
                        let s = self.double_quoted()?;
                        self.expect_line_end("the @include path")?;
                        s
                    }
                    Some('\'') => {
                        let s = self.single_quoted()?;
                        self.expect_line_end("the @include path")?;
                        s
                    }
                    _ => self.unquoted(),
                };
                if target.is_empty() {
                    return Err(Fault::Include { origin, target, reason: "no path given".to_string() });
                }
                self.expect_line_end("the @include path")?;
                include(&target, &origin, body, stack)?;
                continue;
            }
            let value =
                if matches!(self.peek(), None | Some('\n' | '\r')) { String::new() } else { self.literal()? };
            self.expect_line_end(&format!("the value of {key}"))?;
            body.params.push(Param { key, value, origin });
        }
    }

    fn literal(&mut self) -> Result<String, Fault> {
        match self.peek() {
            Some('"') => self.double_quoted(),
            Some('\'') => self.single_quoted(),
            Some('[' | '{') => self.json(),
            _ => Ok(self.unquoted()),
        }
    }

    /// A value without quotes: up to the end of the line, or to white space followed by a comment.
    fn unquoted(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' || ((c == ' ' || c == '\t' || c == '\r') && self.rest_is_line_end()) {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    fn double_quoted(&mut self) -> Result<String, Fault> {
        let start = self.origin();
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(Fault::Syntax {
                    origin: start,
                    reason: "unterminated double-quoted string".to_string(),
                });
            };
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(escaped) = self.bump() else { continue };
                    out.push(match escaped {
                        '"' => '"',
                        '\'' => '\'',
                        'r' => '\r',
                        'n' => '\n',
                        't' => '\t',
                        'f' => '\u{c}',
                        'b' => '\u{8}',
                        c if c.is_ascii_alphanumeric() => {
                            return Err(self.syntax(format!("unexpected back-slash escape character '{c}'")));
                        }
                        other => other,
                    });
                }
                '#' if self.peek() == Some('{') => {
                    return Err(self.syntax(
                        "embedded Ruby code \"#{...}\" is not supported; write the value literally",
                    ));
                }
                other => out.push(other),
            }
        }
    }

    fn single_quoted(&mut self) -> Result<String, Fault> {
        let start = self.origin();
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(Fault::Syntax {
                    origin: start,
                    reason: "unterminated single-quoted string".to_string(),
                });
            };
            match c {
                '\'' => return Ok(out),
                '\\' if matches!(self.peek(), Some('\'' | '\\')) => {
                    if let Some(escaped) = self.bump() {
                        out.push(escaped);
                    }
                }
                other => out.push(other),
            }
        }
    }

    /// A JSON array or hash, possibly over several lines; kept as its text after validation.
    fn json(&mut self) -> Result<String, Fault> {
        let start = self.origin();
        let mut out = String::new();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        while let Some(c) = self.bump() {
            out.push(c);
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '#' => {
                    // A comment inside a multi-line JSON value, as Fluentd allows.
                    out.pop();
                    self.skip_to_newline();
                }
                '[' | '{' => depth += 1,
                ']' | '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return match serde_json::from_str::<Value>(&out) {
                            Ok(_) => Ok(out),
                            Err(e) => Err(Fault::Syntax {
                                origin: start,
                                reason: format!("invalid JSON value {out}: {e}"),
                            }),
                        };
                    }
                }
                _ => {}
            }
        }
        Err(Fault::Syntax { origin: start, reason: "unterminated JSON array or hash".to_string() })
    }
}

fn is_element_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(super) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Splices the included file(s) into `body`.
fn include(target: &str, origin: &Origin, body: &mut Body, stack: &mut Vec<PathBuf>) -> Result<(), Fault> {
    let error =
        |reason: String| Fault::Include { origin: origin.clone(), target: target.to_string(), reason };
    if target.starts_with("http://") || target.starts_with("https://") {
        return Err(error("remote includes are not supported".to_string()));
    }
    let base = origin.file.parent().unwrap_or_else(|| Path::new("."));
    let path = base.join(target);
    let files = expand_glob(&path).map_err(error)?;
    for file in files {
        let key = canonical(&file);
        if stack.contains(&key) {
            return Err(error(format!("include cycle through {}", file.display())));
        }
        if stack.len() > MAX_INCLUDE_DEPTH {
            return Err(error(format!("includes nested more than {MAX_INCLUDE_DEPTH} deep")));
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| error(format!("cannot read {}: {e}", file.display())))?;
        stack.push(key);
        Scanner::new(&text, &file).parse_body(None, body, stack)?;
        stack.pop();
    }
    Ok(())
}

/// A path whose file name may contain `*` and `?`: the matching files in sorted order (none is not an
/// error, as in Fluentd). Without wildcards, the path itself.
fn expand_glob(path: &Path) -> Result<Vec<PathBuf>, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Ok(vec![path.to_path_buf()]);
    }
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err("wildcards are only supported in the file name".to_string());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let file_name = entry.file_name();
        if let Some(candidate) = file_name.to_str()
            && wildcard_match(name, candidate)
            && entry.path().is_file()
        {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer matcher with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Body, Fault> {
        let mut body = Body::default();
        Scanner::new(text, Path::new("/virtual/x.conf")).parse_body(None, &mut body, &mut Vec::new())?;
        Ok(body)
    }

    #[test]
    fn tree_with_lines_and_values() {
        let body = parse("top 1\n\n<a x y>  # c\n  k\n  v \"q\" # c\n  <b>\n  </b>\n</a>\n").unwrap();
        assert_eq!((body.params[0].key.as_str(), body.params[0].value.as_str()), ("top", "1"));
        let a = &body.elements[0];
        assert_eq!((a.name.as_str(), a.arg.as_str(), a.origin.line), ("a", "x y", 3));
        assert_eq!((a.body.params[0].key.as_str(), a.body.params[0].value.as_str()), ("k", ""));
        assert_eq!((a.body.params[1].value.as_str(), a.body.params[1].origin.line), ("q", 5));
        assert_eq!((a.body.elements[0].title(), a.body.elements[0].origin.line), ("b".to_string(), 6));
    }

    #[test]
    fn hash_inside_a_word_is_not_a_comment() {
        let body = parse("a x#y\nb #z\nc x #y\n").unwrap();
        let values: Vec<&str> = body.params.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(values, ["x#y", "#z", "x"]);
    }

    #[test]
    fn multi_line_quoted_strings_keep_counting_lines() {
        let body = parse("a \"1\n2\"\nb 'it\\'s \\\\ \\n'\nc 3\n").unwrap();
        assert_eq!(body.params[0].value, "1\n2");
        assert_eq!(body.params[1].value, "it's \\ \\n");
        assert_eq!(body.params[2].origin.line, 4);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("b*.conf", "b1.conf"));
        assert!(wildcard_match("*", "x"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("b*.conf", "a1.conf"));
        assert!(!wildcard_match("*.conf", "x.confx"));
    }
}
