//! Validation of control declarations (`controls` of the experiment, the hypothesis and activities).

use serde_json::{Map, Value};

use super::{Checker, child};
use crate::chaos::experiment::model::{ControlDecl, ControlScope};

impl Checker<'_> {
    pub(super) fn controls(&mut self, value: Option<&Value>, path: &str) -> Vec<ControlDecl> {
        let items = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error(path, "controls must be a list");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, c) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(obj) = c.as_object() else {
                self.error(at, "a control must be a mapping");
                continue;
            };
            let reference = match obj.get("ref") {
                None => None,
                Some(Value::String(r)) if !r.is_empty() => Some(r.clone()),
                Some(_) => {
                    self.error(child(&at, "ref"), "a control reference must be a non-empty string");
                    continue;
                }
            };
            let scope = match obj.get("scope") {
                None | Some(Value::Null) => None,
                Some(s) => serde_json::from_value::<ControlScope>(s.clone())
                    .map_err(|_| {
                        self.error(
                            child(&at, "scope"),
                            "Control scope property must be 'before' or 'after' only",
                        )
                    })
                    .ok(),
            };
            let automatic = match obj.get("automatic") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    self.error(child(&at, "automatic"), "automatic must be a boolean");
                    true
                }
            };
            let name = self.optional_text(obj, "name", &at).unwrap_or_default();
            if reference.is_some() {
                out.push(ControlDecl {
                    name,
                    module: String::new(),
                    arguments: Map::new(),
                    scope,
                    automatic,
                    reference,
                    raw: c.clone(),
                });
                continue;
            }
            if name.is_empty() {
                self.error(child(&at, "name"), "A control must have a `name` property");
            }
            let provider_path = child(&at, "provider");
            let Some(provider) = obj.get("provider").and_then(Value::as_object) else {
                self.error(provider_path, format!("Control '{name}' must have a `provider` property"));
                continue;
            };
            if provider.get("type").and_then(Value::as_str) != Some("python") {
                self.error(child(&provider_path, "type"), "a control provider must be of type 'python'");
            }
            let module = self.required_text(
                provider,
                "module",
                &provider_path,
                "a control provider must name its `module`",
            );
            let arguments = provider.get("arguments").and_then(Value::as_object).cloned().unwrap_or_default();
            if let Some(module) = module {
                out.push(ControlDecl {
                    name,
                    module,
                    arguments,
                    scope,
                    automatic,
                    reference: None,
                    raw: c.clone(),
                });
            }
        }
        out
    }
}
