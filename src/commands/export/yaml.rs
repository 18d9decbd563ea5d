//! A YAML writer for the manifests `export` produces (Kubernetes, compose): block mappings and
//! sequences from a `serde_json::Value`, keys in the order given.
//!
//! Written here rather than taken from a crate: only emitting is needed (no parsing), and the
//! maintained YAML serialisers for serde are forks of the archived `serde_yaml`. Every string is
//! written double-quoted with JSON escapes, which YAML 1.1 and 1.2 read the same way, so no value
//! can turn into a number, a boolean or a `null` ("no", "on", "1.0", "~").

use serde_json::Value;

/// `v` as a YAML document (no leading `---`), ending in a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A double-quoted scalar: JSON's escapes are YAML's.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A key: plain when it is a simple word (what manifests use), else quoted.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !k.starts_with(['-', '.'])
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~"
        )
        && k.parse::<f64>().is_err();
    if plain { k.to_string() } else { quote(k) }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn mapping(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn sequence(out: &mut String, a: &[Value], indent: usize) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => {
                // The first key on the dash's line, the others aligned under it.
                let mut first = true;
                for (k, inner) in m {
                    if !first {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    first = false;
                    out.push_str(&key(k));
                    out.push(':');
                    if is_block(inner) {
                        out.push('\n');
                        match inner {
                            Value::Object(im) => mapping(out, im, indent + 4),
                            Value::Array(ia) => sequence(out, ia, indent + 2),
                            _ => {}
                        }
                    } else {
                        out.push(' ');
                        out.push_str(&scalar(inner));
                        out.push('\n');
                    }
                }
            }
            Value::Array(items) if !items.is_empty() => {
                // A sequence in a sequence: flow style keeps it on one line.
                let parts: Vec<String> = items.iter().map(flow).collect();
                out.push_str(&format!("[{}]\n", parts.join(", ")));
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// Flow style (JSON is valid YAML flow).
fn flow(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mappings_sequences_and_quoted_strings() {
        let v = json!({
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 2, "containers": [
                {"name": "web", "command": ["gunicorn", "app:app"], "env": [], "ports": [{"containerPort": 8001}]}
            ]},
            "no": "no",
            "empty": {},
        });
        let text = to_yaml(&v);
        assert_eq!(
            text,
            "apiVersion: \"apps/v1\"\nmetadata:\n  name: \"web\"\n  labels:\n    app.kubernetes.io/name: \"web\"\nspec:\n  replicas: 2\n  containers:\n  - name: \"web\"\n    command:\n    - \"gunicorn\"\n    - \"app:app\"\n    env: []\n    ports:\n    - containerPort: 8001\n\"no\": \"no\"\nempty: {}\n"
        );
    }

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let text = to_yaml(&json!({"a": "1.0", "b": "on", "c": "line\nbreak", "d": "~"}));
        assert_eq!(
            text,
            "a: \"1.0\"\nb: \"on\"\nc: \"line\\nbreak\"\nd: \"~\"\n"
        );
    }
}
