//! [`Section`]: reads one directive's parameters and child sections, remembering which were used so
//! that the rest can be noted as unused.

use serde_json::Value;

use crate::monitoring::logs::config::syntax::{Element, Param};
use crate::monitoring::logs::config::{Fault, Origin};

/// Reads one element's parameters and children, remembering which were used.
pub(super) struct Section<'a> {
    pub(super) element: &'a Element,
    pub(super) used_params: Vec<bool>,
    pub(super) used_children: Vec<bool>,
}

impl<'a> Section<'a> {
    pub(super) fn new(element: &'a Element) -> Self {
        let mut section = Self {
            element,
            used_params: vec![false; element.body.params.len()],
            used_children: vec![false; element.body.elements.len()],
        };
        section.ignore(&["@type", "type", "@id", "@log_level"]);
        section
    }

    pub(super) fn directive(&self) -> String {
        self.element.title()
    }

    pub(super) fn invalid(&self, origin: &Origin, reason: impl Into<String>) -> Fault {
        Fault::Invalid { origin: origin.clone(), directive: self.directive(), reason: reason.into() }
    }

    pub(super) fn unsupported(
        &self,
        origin: &Origin,
        what: impl Into<String>,
        reason: impl Into<String>,
    ) -> Fault {
        Fault::Unsupported {
            origin: origin.clone(),
            directive: self.directive(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(super) fn param(&mut self, key: &str) -> Option<&'a Param> {
        let mut found = None;
        for (index, param) in self.element.body.params.iter().enumerate() {
            if param.key == key {
                self.used_params[index] = true;
                found = Some(param);
            }
        }
        found
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        self.param(key).map(|p| p.value.clone())
    }

    pub(super) fn required(&mut self, key: &str) -> Result<&'a Param, Fault> {
        match self.param(key) {
            Some(param) => Ok(param),
            None => Err(self.invalid(&self.element.origin, format!("parameter `{key}` is required"))),
        }
    }

    pub(super) fn bool(&mut self, key: &str, default: bool) -> Result<bool, Fault> {
        let Some(param) = self.param(key) else { return Ok(default) };
        match param.value.as_str() {
            "true" | "yes" | "" => Ok(true),
            "false" | "no" => Ok(false),
            other => {
                Err(self.invalid(&param.origin, format!("`{key}` must be true or false, not {other:?}")))
            }
        }
    }

    pub(super) fn port(&mut self, key: &str, default: u16) -> Result<u16, Fault> {
        let Some(param) = self.param(key) else { return Ok(default) };
        param.value.parse::<u16>().map_err(|_| {
            self.invalid(&param.origin, format!("`{key}` must be a port number, not {:?}", param.value))
        })
    }

    pub(super) fn list(&mut self, key: &str) -> Option<Vec<String>> {
        self.param(key).map(|p| split_list(&p.value))
    }

    pub(super) fn plugin_type(&mut self) -> Result<String, Fault> {
        let found = match self.param("@type") {
            Some(param) => Some(param),
            None => self.param("type"),
        };
        match found {
            Some(param) => Ok(param.value.clone()),
            None => Err(self.invalid(&self.element.origin, "parameter `@type` is required")),
        }
    }

    pub(super) fn ignore(&mut self, keys: &[&str]) {
        for key in keys {
            self.param(key);
        }
    }

    pub(super) fn children(&mut self, name: &str) -> Vec<&'a Element> {
        let mut found = Vec::new();
        for (index, element) in self.element.body.elements.iter().enumerate() {
            if element.name == name {
                self.used_children[index] = true;
                found.push(element);
            }
        }
        found
    }

    pub(super) fn child(&mut self, name: &str) -> Result<Option<&'a Element>, Fault> {
        let mut found = self.children(name);
        if found.len() > 1 {
            let second = found.remove(1);
            return Err(self.invalid(&second.origin, format!("only one <{name}> section is allowed")));
        }
        Ok(found.pop())
    }

    pub(super) fn ignore_children(&mut self, names: &[&str]) {
        for name in names {
            self.children(name);
        }
    }

    /// Notes every parameter and section that nothing read.
    pub(super) fn finish(self, notes: &mut Vec<String>) {
        for (param, used) in self.element.body.params.iter().zip(&self.used_params) {
            if !*used {
                note(
                    notes,
                    format!(
                        "{}: parameter `{}` in <{}> is not used",
                        param.origin,
                        param.key,
                        self.directive()
                    ),
                );
            }
        }
        for (child, used) in self.element.body.elements.iter().zip(&self.used_children) {
            if !*used {
                note(
                    notes,
                    format!(
                        "{}: section <{}> in <{}> is not used",
                        child.origin,
                        child.title(),
                        self.directive()
                    ),
                );
            }
        }
    }
}

pub(super) fn note(notes: &mut Vec<String>, text: String) {
    tracing::warn!(target: "chaoslab::logs::config", "{text}");
    notes.push(text);
}

pub(super) fn split_list(value: &str) -> Vec<String> {
    if value.starts_with('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(value)
    {
        return items
            .into_iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .collect();
    }
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}
