//! Reading experiment (and var) files: JSON or YAML, chosen by extension, else by content.
//!
//! The result is a plain [`serde_json::Value`]; [`validate`](super::validate::validate) turns it into
//! an [`Experiment`](super::model::Experiment). Syntax errors name the file, line and column, so a
//! typo in a 200-line YAML experiment points at its place. YAML goes through `serde_norway` (the
//! maintained fork of the archived `serde_yaml`; `serde_yml` carries RUSTSEC-2025-0068).

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

/// The syntax of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.json`.
    Json,
    /// `.yaml` / `.yml`.
    Yaml,
}

impl Format {
    /// `.json` is JSON and `.yaml`/`.yml` YAML; any other name is JSON when its first non-blank
    /// character opens an object or a list, YAML otherwise.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ if text.trim_start().starts_with(['{', '[']) => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// A file that could not be read or parsed.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The file is not valid YAML (or holds YAML that has no JSON equivalent, like non-string keys).
    #[error("{}{}: invalid YAML: {message}", .path.display(), location_suffix(*.location))]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line and column, when the parser knows them.
        location: Option<(usize, usize)>,
        /// What the parser said.
        message: String,
    },
}

fn location_suffix(location: Option<(usize, usize)>) -> String {
    location.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default()
}

/// Reads and parses `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Value, LoadError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    parse(&text, Format::detect(path, &text), path)
}

/// Parses `text` in `format`; `origin` names the document in errors.
pub fn parse(text: &str, format: Format, origin: &Path) -> Result<Value, LoadError> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| LoadError::Json {
            path: origin.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        }),
        Format::Yaml => serde_norway::from_str(text).map_err(|e| {
            let message = strip_position(&e.to_string());
            // The parser gives no place for a second document; it starts where the text leaves the first
            // one's indentation (or at a `---`), usually an indentation mistake.
            let (location, message) = match e.location() {
                Some(l) => (Some((l.line(), l.column())), message),
                None if message.contains("more than one document") => match second_document_line(text) {
                    Some(line) => (
                        Some((line, 1)),
                        format!("{message}: a second document starts here (check this line's indentation)"),
                    ),
                    None => (None, message),
                },
                None => (None, message),
            };
            LoadError::Yaml { path: origin.to_path_buf(), location, message }
        }),
    }
}

/// The 1-based line where a YAML text's second document starts: a `---` after content, or the first
/// content line indented less than the first one.
fn second_document_line(text: &str) -> Option<usize> {
    let content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut lines = text.lines().enumerate().filter(|(_, l)| content(l));
    let (_, first) = lines.next()?;
    let base = indent(first);
    lines.find(|(_, l)| l.starts_with("---") || indent(l) < base).map(|(i, _)| i + 1)
}

/// Drops the " at line L column C" both parsers append, since the error prints its own position.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;

    #[test]
    fn format_by_extension_then_content() {
        assert_eq!(Format::detect(Path::new("e.json"), "title: x"), Format::Json);
        assert_eq!(Format::detect(Path::new("e.YML"), "{}"), Format::Yaml);
        assert_eq!(Format::detect(Path::new("e"), "  {\"a\": 1}"), Format::Json);
        assert_eq!(Format::detect(Path::new("e.txt"), "a: 1"), Format::Yaml);
    }

    #[test]
    fn yaml_reads_python_style_booleans_and_keeps_order() {
        let v = parse("b: True\na: [1, 'x']\n", Format::Yaml, Path::new("x.yaml")).unwrap();
        assert_eq!(v, json!({"b": true, "a": [1, "x"]}));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err =
            parse("{\n  \"title\": \"x\",\n  oops\n}", Format::Json, Path::new("exp.json")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("exp.json:3:"), "{text}");
        assert!(matches!(err, LoadError::Json { line: 3, .. }));

        let err = parse("title: x\nmethod: [a, b\n", Format::Yaml, Path::new("exp.yaml")).unwrap_err();
        let LoadError::Yaml { location: Some((line, _)), .. } = &err else { panic!("{err:?}") };
        assert!(*line >= 2, "{err}");
        assert!(err.to_string().starts_with("exp.yaml:"), "{err}");
    }

    #[test]
    fn load_reads_files_and_reports_missing_ones() {
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        writeln!(f, "title: hello").unwrap();
        assert_eq!(load(f.path()).unwrap(), json!({"title": "hello"}));
        let missing = load("/nonexistent/experiment.json").unwrap_err();
        assert!(missing.to_string().starts_with("cannot read /nonexistent/experiment.json"));
    }
}
