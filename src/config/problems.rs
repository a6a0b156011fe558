//! The one problem collector: a configuration check records every problem it finds, with the file, the
//! line when known, and the key path, and reports them together.

use std::fmt;

use serde::Serialize;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file cannot be used; nothing starts.
    Error,
    /// Worth knowing; the file is used as written.
    Warning,
}

/// One segment of a key path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Segment {
    /// A table or mapping key.
    Key(String),
    /// An array or sequence index.
    Index(usize),
}

/// Where inside a file: `components.FLINK.window`, `groups[0].rules[2].expr`, `links."A->B".loss`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The empty path (the whole file).
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// Parses the dotted form: keys split at dots outside double quotes, `[n]` for indices.
    pub fn parse(text: &str) -> KeyPath {
        let mut segments = Vec::new();
        let mut key = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        let flush = |key: &mut String, segments: &mut Vec<Segment>| {
            if !key.is_empty() {
                segments.push(Segment::Key(std::mem::take(key)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '.' if !quoted => flush(&mut key, &mut segments),
                '[' if !quoted => {
                    flush(&mut key, &mut segments);
                    let mut digits = String::new();
                    for d in chars.by_ref() {
                        if d == ']' {
                            break;
                        }
                        digits.push(d);
                    }
                    match digits.parse() {
                        Ok(i) => segments.push(Segment::Index(i)),
                        Err(_) => segments.push(Segment::Key(digits)),
                    }
                }
                c => key.push(c),
            }
        }
        flush(&mut key, &mut segments);
        KeyPath(segments)
    }

    /// This path with a key appended.
    pub fn key(&self, key: impl Into<String>) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.into()));
        p
    }

    /// This path with an index appended.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// This path followed by `other`.
    pub fn join(&self, other: &KeyPath) -> KeyPath {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// True for the root.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for KeyPath {
    fn from(text: &str) -> KeyPath {
        KeyPath::parse(text)
    }
}

impl From<&[Segment]> for KeyPath {
    fn from(segments: &[Segment]) -> KeyPath {
        KeyPath(segments.to_vec())
    }
}

impl From<String> for KeyPath {
    fn from(text: String) -> KeyPath {
        KeyPath::parse(&text)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let plain = !k.is_empty()
                        && k.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | '@'));
                    if plain { f.write_str(k)? } else { write!(f, "{k:?}")? }
                }
            }
        }
        Ok(())
    }
}

impl Serialize for KeyPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One problem, with its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The file (or a name such as `flows/reference.toml (built in)`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key path inside the file; empty for the file as a whole.
    pub key: KeyPath,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `file:line:key: message`, leaving out what is unknown; warnings start with `warning: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ":{}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Finds the line of a key path in a file's text.
pub trait Locate {
    /// The 1-based line of `key`, or of its nearest ancestor that exists; `None` when nothing matches.
    fn line_of(&self, key: &KeyPath) -> Option<usize>;
}

/// A locator that knows no lines.
pub struct NoLines;

impl Locate for NoLines {
    fn line_of(&self, _key: &KeyPath) -> Option<usize> {
        None
    }
}

/// Every problem a check found, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Problems {
    items: Vec<Problem>,
}

impl Problems {
    /// No problems yet.
    pub fn new() -> Problems {
        Problems::default()
    }

    /// Records a problem.
    pub fn push(&mut self, problem: Problem) {
        self.items.push(problem);
    }

    /// Records an error with everything given.
    pub fn error(
        &mut self,
        file: &str,
        line: Option<usize>,
        key: impl Into<KeyPath>,
        message: impl Into<String>,
    ) {
        self.push(Problem {
            severity: Severity::Error,
            file: file.to_string(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// Records a warning with everything given.
    pub fn warning(
        &mut self,
        file: &str,
        line: Option<usize>,
        key: impl Into<KeyPath>,
        message: impl Into<String>,
    ) {
        self.push(Problem {
            severity: Severity::Warning,
            file: file.to_string(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// A view that records problems of one file, finding lines with `locate`.
    pub fn in_file<'a>(&'a mut self, file: &'a str, locate: &'a dyn Locate) -> FileProblems<'a> {
        FileProblems { problems: self, file, locate }
    }

    /// Moves every problem of `other` here.
    pub fn append(&mut self, other: Problems) {
        self.items.extend(other.items);
    }

    /// Orders each file's problems by line, keeping the order found among equal lines; files stay in the
    /// order of their first problem, and problems without a line come after a file's others.
    pub fn sort_by_line(&mut self) {
        let mut files: Vec<String> = Vec::new();
        for p in &self.items {
            if !files.contains(&p.file) {
                files.push(p.file.clone());
            }
        }
        self.items.sort_by_key(|p| {
            let file = files.iter().position(|f| *f == p.file).unwrap_or(usize::MAX);
            (file, p.line.is_none(), p.line)
        });
    }

    /// All problems, in the order found.
    pub fn all(&self) -> &[Problem] {
        &self.items
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.items.iter().filter(|p| p.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.items.iter().filter(|p| p.severity == Severity::Warning)
    }

    /// True when there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `Ok(value)` with the warnings when there are no errors, else every problem as one error.
    pub fn finish<T>(self, value: T) -> Result<(T, Vec<Problem>), ProblemsError> {
        if self.has_errors() { Err(ProblemsError(self.items)) } else { Ok((value, self.items)) }
    }

    /// Every problem as one error when there are errors.
    pub fn check(self) -> Result<Vec<Problem>, ProblemsError> {
        self.finish(()).map(|((), warnings)| warnings)
    }
}

/// Records problems of one file.
pub struct FileProblems<'a> {
    problems: &'a mut Problems,
    file: &'a str,
    locate: &'a dyn Locate,
}

impl FileProblems<'_> {
    /// An error at `key` (its line found in the file).
    pub fn error(&mut self, key: impl Into<KeyPath>, message: impl Into<String>) {
        let key = key.into();
        let line = self.locate.line_of(&key);
        self.problems.error(self.file, line, key, message);
    }

    /// A warning at `key`.
    pub fn warning(&mut self, key: impl Into<KeyPath>, message: impl Into<String>) {
        let key = key.into();
        let line = self.locate.line_of(&key);
        self.problems.warning(self.file, line, key, message);
    }

    /// An error at a known line.
    pub fn error_at(&mut self, line: Option<usize>, key: impl Into<KeyPath>, message: impl Into<String>) {
        self.problems.error(self.file, line, key, message);
    }

    /// The file's name.
    pub fn file(&self) -> &str {
        self.file
    }

    /// `file:line` of `key` (or `file` when its line is unknown), to point at it later.
    pub fn place(&self, key: &KeyPath) -> String {
        match self.locate.line_of(key) {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.to_string(),
        }
    }
}

/// Every problem of a check that found errors; `Display` prints one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ProblemsError(pub Vec<Problem>);

impl ProblemsError {
    /// One error with no line.
    pub fn one(file: &str, key: impl Into<KeyPath>, message: impl Into<String>) -> ProblemsError {
        let mut p = Problems::new();
        p.error(file, None, key, message);
        ProblemsError(p.items)
    }

    /// The errors (warnings left out).
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter().filter(|p| p.severity == Severity::Error)
    }
}

impl fmt::Display for ProblemsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.0.iter().filter(|p| p.severity == Severity::Error).count();
        if errors > 1 {
            writeln!(f, "{errors} problems:")?;
        }
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_round_trip() {
        for text in
            ["components.FLINK.window", "groups[0].rules[2].expr", "links.\"A->B\".loss", "$.method[1]"]
        {
            assert_eq!(KeyPath::parse(text).to_string(), text);
        }
        assert_eq!(KeyPath::root().key("links").key("A->B").to_string(), "links.\"A->B\"");
        assert_eq!(KeyPath::parse("a[x]").segments(), &[Segment::Key("a".into()), Segment::Key("x".into())]);
    }

    #[test]
    fn problems_print_file_line_key_message() {
        let mut p = Problems::new();
        p.error("f.toml", Some(3), "components.X.k", "must be at least 1");
        p.warning("f.toml", None, "", "no line");
        assert!(p.has_errors());
        let err = p.clone().check().unwrap_err();
        assert_eq!(err.to_string(), "f.toml:3:components.X.k: must be at least 1\nwarning: f.toml: no line");
        let mut s = Problems::new();
        s.error("b", Some(9), "", "b9");
        s.error("a", None, "", "a-");
        s.error("b", Some(2), "", "b2");
        s.error("a", Some(5), "", "a5");
        s.sort_by_line();
        let order: Vec<&str> = s.all().iter().map(|p| p.message.as_str()).collect();
        assert_eq!(order, ["b2", "b9", "a5", "a-"]);
        let mut w = Problems::new();
        w.warning("g.yml", Some(1), "a", "b");
        assert_eq!(w.check().unwrap().len(), 1);
    }
}
