//! The meaning of a Fluentd configuration: `<source>`, `<filter>`, `<match>` and `<label>` built into
//! the typed values of the parent module, refusing plugins and parameters chaoslab does not implement and
//! noting parameters nothing reads.
//!
//! Files: `mod.rs` (the top level and `<label>`), `source.rs` (`<source>`), `filter.rs` (`<filter>`),
//! `output.rs` (`<match>` and its outputs), `section.rs` (reading one directive's parameters).

mod filter;
mod output;
mod section;
mod source;

use std::collections::BTreeMap;

use super::syntax::{Body, Element};
use super::{Config, Directive, Fault, Origin, Problems, TagPattern};
use section::note;

/// Builds directives, noting what is ignored.
#[derive(Default)]
struct Builder {
    notes: Vec<String>,
}

/// Where a directive lives, for the label references it may hold.
struct LabelRef {
    label: String,
    origin: Origin,
    directive: String,
}

/// Gives the syntax tree its meaning. Each directive is built on its own: a broken one is recorded in
/// `problems` and the others are still checked.
pub(super) fn build(body: Body, problems: &mut Problems) -> Config {
    let mut builder = Builder::default();
    for param in &body.params {
        note(
            &mut builder.notes,
            format!("{}: top-level parameter `{}` is not used", param.origin, param.key),
        );
    }
    let mut sources = Vec::new();
    let mut root = Vec::new();
    let mut labels = BTreeMap::new();
    let mut refs = Vec::new();
    for element in &body.elements {
        let result = match element.name.as_str() {
            "source" => builder.source(element, &mut refs).map(|s| sources.push(s)).map_err(|f| vec![f]),
            "filter" => builder.filter(element).map(|d| root.push(d)).map_err(|f| vec![f]),
            "match" => builder.match_directive(element, &mut refs).map(|d| root.push(d)).map_err(|f| vec![f]),
            "label" => {
                let name = element.arg.trim();
                if !name.starts_with('@') || name.len() < 2 || name.contains(char::is_whitespace) {
                    Err(vec![Fault::Invalid {
                        origin: element.origin.clone(),
                        directive: element.title(),
                        reason: "a label name must be one word starting with '@'".to_string(),
                    }])
                } else if labels.contains_key(name) {
                    Err(vec![Fault::Invalid {
                        origin: element.origin.clone(),
                        directive: element.title(),
                        reason: format!("label {name} is defined twice"),
                    }])
                } else {
                    let (directives, broken) = builder.label(element, &mut refs);
                    labels.insert(name.to_string(), directives);
                    if broken.is_empty() { Ok(()) } else { Err(broken) }
                }
            }
            "system" => {
                note(&mut builder.notes, format!("{}: <system> is ignored", element.origin));
                Ok(())
            }
            "worker" => Err(vec![Fault::Unsupported {
                origin: element.origin.clone(),
                directive: element.title(),
                what: "<worker>".to_string(),
                reason: "chaoslab runs a single routing worker".to_string(),
            }]),
            other => Err(vec![Fault::Syntax {
                origin: element.origin.clone(),
                reason: format!("unknown top-level directive <{other}>"),
            }]),
        };
        if let Err(broken) = result {
            broken.into_iter().for_each(|f| problems.push(f.into()));
        }
    }
    for reference in refs {
        // `@FLUENT_LOG` and `@ERROR` are built-in destinations in Fluentd; only they may be absent.
        if !labels.contains_key(&reference.label) && reference.label != "@ERROR" {
            problems.push(
                Fault::Invalid {
                    origin: reference.origin,
                    directive: reference.directive,
                    reason: format!("label {} is not defined", reference.label),
                }
                .into(),
            );
        }
    }
    Config { sources, root, labels, notes: builder.notes }
}

impl Builder {
    /// The directives of a `<label>`, and the problems of those that are broken.
    fn label(&mut self, element: &Element, refs: &mut Vec<LabelRef>) -> (Vec<Directive>, Vec<Fault>) {
        let mut directives = Vec::new();
        let mut problems = Vec::new();
        for param in &element.body.params {
            note(
                &mut self.notes,
                format!("{}: parameter `{}` in <{}> is not used", param.origin, param.key, element.title()),
            );
        }
        for child in &element.body.elements {
            let result = match child.name.as_str() {
                "filter" => self.filter(child),
                "match" => self.match_directive(child, refs),
                other => Err(Fault::Syntax {
                    origin: child.origin.clone(),
                    reason: format!("<{other}> is not allowed inside <{}>", element.title()),
                }),
            };
            match result {
                Ok(directive) => directives.push(directive),
                Err(fault) => problems.push(fault),
            }
        }
        (directives, problems)
    }

    fn pattern(&self, element: &Element) -> Result<TagPattern, Fault> {
        let text = if element.arg.trim().is_empty() { "**" } else { element.arg.as_str() };
        TagPattern::parse(text).map_err(|e| Fault::Invalid {
            origin: element.origin.clone(),
            directive: element.title(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
