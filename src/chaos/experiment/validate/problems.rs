//! The problems of an experiment document with their file and line: JSON paths located in the YAML or
//! JSON text.

use std::path::Path;

use crate::config::locate::YamlLines;
use crate::config::problems::{KeyPath, Locate, Segment};
use crate::config::{Problem, Problems, Severity};

use super::ValidationError;
use crate::chaos::experiment::provider::PythonProviders;

impl ValidationError {
    /// The JSON path as a key path: `$.method[2]['a b']` → `$`, `method`, `2`, `a b`.
    pub fn key(&self) -> KeyPath {
        json_path_key(&self.path)
    }

    /// This problem in the experiment file `file`, on the line `lines` finds for its path.
    pub fn to_problem(&self, file: &str, lines: &YamlLines) -> Problem {
        let key = self.key();
        Problem {
            severity: Severity::Error,
            file: file.to_string(),
            line: JsonPathLines(lines).line_of(&key),
            key,
            message: self.message.clone(),
        }
    }
}

/// The problems `errors` of the experiment document read from `file` (whose text is `text`, YAML or
/// JSON), each with the line of the value at fault.
pub fn problems_in(file: &str, text: &str, errors: &[ValidationError]) -> Problems {
    let lines = YamlLines::new(text);
    let mut problems = Problems::new();
    for e in errors {
        problems.push(e.to_problem(file, &lines));
    }
    problems
}

/// Every problem of the experiment text `text` (YAML or JSON, told apart by its first character), named
/// `file`: a parse error at its line, or each validation problem at the line of the value at fault.
pub fn check_text(file: &str, text: &str, providers: &dyn PythonProviders) -> Problems {
    use crate::chaos::experiment::load::{Format, LoadError, parse};
    let format = Format::detect(Path::new(file), text);
    let raw = match parse(text, format, Path::new(file)) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, message) = match &e {
                LoadError::Json { line, message, .. } => (Some(*line), message.clone()),
                LoadError::Yaml { location, message, .. } => (location.map(|l| l.0), message.clone()),
                other => (None, other.to_string()),
            };
            let mut problems = Problems::new();
            problems.push(Problem {
                severity: Severity::Error,
                file: file.to_owned(),
                line,
                key: KeyPath::root(),
                message,
            });
            return problems;
        }
    };
    match super::validate(&raw, providers) {
        Ok(_) => Problems::new(),
        Err(errors) => problems_in(file, text, &errors),
    }
}

/// [`problems_in`] for the file at `path`, read again; if it cannot be read the problems have no lines.
pub fn file_problems(path: &Path, errors: &[ValidationError]) -> Problems {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    problems_in(&path.display().to_string(), &text, errors)
}

/// Locates a JSON path (`$` first) in a document.
struct JsonPathLines<'a>(&'a YamlLines);

impl Locate for JsonPathLines<'_> {
    fn line_of(&self, key: &KeyPath) -> Option<usize> {
        match key.segments().split_first() {
            Some((Segment::Key(root), rest)) if root == "$" => self.0.line_of(&KeyPath::from(rest)),
            _ => self.0.line_of(key),
        }
    }
}

/// Parses the paths [`child`](super::child) writes: `$`, `.key`, `[index]` and `['key']` (with `\'` escapes).
fn json_path_key(path: &str) -> KeyPath {
    let mut key = KeyPath::root();
    let mut chars = path.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, key: &mut KeyPath| {
        if !word.is_empty() {
            *key = key.key(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut word, &mut key),
            '[' if chars.peek() == Some(&'\'') => {
                flush(&mut word, &mut key);
                chars.next();
                let mut quoted = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => quoted.extend(chars.next()),
                        '\'' => break,
                        c => quoted.push(c),
                    }
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                }
                key = key.key(quoted);
            }
            '[' => {
                flush(&mut word, &mut key);
                let digits: String = chars.by_ref().take_while(|c| *c != ']').collect();
                key = match digits.parse() {
                    Ok(i) => key.index(i),
                    Err(_) => key.key(digits),
                };
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut key);
    key
}
