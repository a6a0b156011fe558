//! Jsonnet files (`.jsonnet`), as the ChaosMeshWizard study writes its experiments: evaluated with
//! `rsjsonnet` (imports relative to the importing file), then read like JSON. The value may be one object
//! (with `kind`), an array of objects, or an object of named objects (`{chaosWorkflow: {…}}`, what
//! `jsonnet -m` writes one file per field from). Problems in a rendered object name the file, the field and
//! the line of the rendered JSON; evaluation errors are printed by the evaluator with their own line and
//! column.

use std::path::Path;

use serde_json::Value;

/// The objects `path` renders to, each labelled (`chaosWorkflow`, `[0]`, or `rendered`) with its JSON
/// text (pretty, so that a problem's line points somewhere readable).
pub fn render(path: &Path) -> Result<Vec<(String, String)>, String> {
    render_with(path, &[])
}

/// [`render`] with external variables (`std.extVar("latency")`), each a string.
pub fn render_with(path: &Path, ext_vars: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let arena = rsjsonnet_lang::arena::Arena::new();
    let mut session = rsjsonnet_front::Session::new(&arena);
    let failed = "Jsonnet evaluation failed (the evaluator's message is above)";
    for (name, value) in ext_vars {
        let program = session.program_mut();
        let value = rsjsonnet_lang::program::Value::string(value);
        let thunk = program.value_to_thunk(&value);
        let name = program.intern_str(name);
        program.add_ext_var(name, &thunk);
    }
    let thunk = session.load_real_file(path).ok_or(failed)?;
    let value = session.eval_value(&thunk).ok_or(failed)?;
    let json = session.manifest_json(&value, false).ok_or(failed)?;
    let value: Value =
        serde_json::from_str(&json).map_err(|e| format!("the rendered JSON does not parse: {e}"))?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    Ok(match value {
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (format!("[{i}]"), pretty(v))).collect(),
        Value::Object(map)
            if !map.contains_key("kind") && map.values().all(Value::is_object) && !map.is_empty() =>
        {
            map.iter().map(|(k, v)| (k.clone(), pretty(v))).collect()
        }
        other @ Value::Object(_) => vec![("rendered".to_string(), pretty(&other))],
        other => {
            return Err(format!(
                "renders to {}, not an object or a list of objects",
                crate::config::json_kind(&other)
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_arrays_and_named_objects_render() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib.libsonnet");
        std::fs::write(&lib, "{ chaos(name):: { kind: 'PodChaos', metadata: { name: name } } }").unwrap();
        let main = dir.path().join("main.jsonnet");
        std::fs::write(&main, "local l = import 'lib.libsonnet';\n{ a: l.chaos('x'), b: l.chaos('y') }\n")
            .unwrap();
        let out = render(&main).unwrap();
        assert_eq!(out.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(out[1].1.contains("\"name\": \"y\""));
        std::fs::write(&main, "[{ kind: 'PodChaos' }]").unwrap();
        assert_eq!(render(&main).unwrap()[0].0, "[0]");
        std::fs::write(&main, "42").unwrap();
        assert!(render(&main).unwrap_err().contains("a number"));
        std::fs::write(&main, "{ a: error 'no' }").unwrap();
        assert!(render(&main).unwrap_err().contains("evaluation failed"));
        std::fs::write(&main, "{ kind: 'NetworkChaos', latency: std.extVar('latency') }").unwrap();
        let vars = [("latency".to_string(), "20ms".to_string())];
        assert!(render_with(&main, &vars).unwrap()[0].1.contains("\"latency\": \"20ms\""));
    }
}
