//! The JSON Schema of `pypm.toml` (`pypm schema`, `schema/pypm.schema.json`), generated from the
//! key registry of [`super`]. It owns only the translation to JSON Schema: no key, type or default
//! is declared here, and the reader never looks at it.

use serde_json::{Value, json};

use super::*;

const DURATION_PATTERN: &str = r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h)?\s*$";
/// A duration string that is zero (`"0"`, `"0ms"`, `"0.0s"`).
const ZERO_DURATION_PATTERN: &str = r"^\s*0*(\.0*)?\s*(ms|s|m|h)?\s*$";
/// `interpreter`: a path, or a value only known once `${VAR}` is expanded.
const PATH_OR_VARIABLE_PATTERN: &str = "/|\\$\\{";
const SIZE_PATTERN: &str = r"^\s*[0-9]+(\.[0-9]+)?\s*([KkMmGgTt]([Ii]?[Bb])?|[Bb])?\s*$";

/// The schema of one value of type `ty`.
fn ty_schema(ty: Ty) -> Value {
    let string_list = json!({"type": "array", "items": {"type": "string"}});
    match ty {
        Ty::Str => json!({"type": "string"}),
        Ty::Text => json!({"type": ["string", "number"]}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Ty::PositiveNumber => json!({"type": "number", "exclusiveMinimum": 0}),
        Ty::Duration => json!({
            "type": ["string", "number"], "pattern": DURATION_PATTERN, "minimum": 0
        }),
        Ty::ProbeDuration => json!({
            "type": ["string", "number"], "pattern": DURATION_PATTERN, "minimum": 0.001,
            "not": {"type": "string", "pattern": ZERO_DURATION_PATTERN}
        }),
        Ty::Size => json!({"type": ["string", "integer"], "pattern": SIZE_PATTERN, "minimum": 0}),
        Ty::Command => json!({"oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string"}, "minItems": 1}
        ]}),
        Ty::StrList => string_list,
        Ty::StrOrStrList => json!({"oneOf": [{"type": "string"}, string_list]}),
        Ty::IntList { min, max } => json!({
            "type": "array", "items": {"type": "integer", "minimum": min, "maximum": max}
        }),
        Ty::EnvMap => json!({
            "type": "object",
            "propertyNames": {"minLength": 1, "pattern": "^[^=\\u0000]*$"},
            "additionalProperties": {"type": ["string", "number", "boolean"]}
        }),
        Ty::Enum(values) => json!({"enum": values}),
        Ty::DependsOn => json!({"oneOf": [
            {"type": "array", "items": {"type": "string", "pattern": APP_NAME_PATTERN}},
            {"type": "object", "propertyNames": {"pattern": APP_NAME_PATTERN},
             "additionalProperties": {"enum": CONDITIONS}}
        ]}),
        Ty::Signal => json!({"type": "string", "pattern": "^(SIG)?[A-Z0-9]+$"}),
        Ty::Regex => json!({"type": "string"}),
        Ty::Interpreter => json!({"type": "string", "anyOf": [
            {"enum": INTERPRETERS},
            {"pattern": "^python[0-9]+(\\.[0-9]+)?$"},
            {"pattern": PATH_OR_VARIABLE_PATTERN}
        ]}),
        Ty::Table(keys) => table_schema(keys, None),
    }
}

/// A table of `keys` (no others); with `exactly_one_of`, exactly one of those keys is present.
fn table_schema(keys: &[Key], exactly_one_of: Option<&[&str]>) -> Value {
    let mut props = serde_json::Map::new();
    for k in keys {
        let mut s = ty_schema(k.ty);
        if let Value::Object(m) = &mut s {
            m.insert("description".into(), Value::String(k.doc.into()));
            if let Some(d) = k.default
                && let Ok(v) = serde_json::from_str::<Value>(d)
            {
                m.insert("default".into(), v);
            }
        }
        props.insert(k.name.into(), s);
    }
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": props,
    });
    if let (Some(one_of), Value::Object(m)) = (exactly_one_of, &mut schema) {
        let alternatives: Vec<Value> = one_of
            .iter()
            .map(|k| {
                let others: Vec<Value> = one_of
                    .iter()
                    .filter(|o| *o != k)
                    .map(|o| json!({"required": [o]}))
                    .collect();
                json!({"required": [k], "not": {"anyOf": others}})
            })
            .collect();
        m.insert("oneOf".into(), Value::Array(alternatives));
    }
    schema
}

/// The JSON Schema of the whole file, generated from the registry.
pub fn json_schema() -> Value {
    let mut app = app_schema();
    let partial_app = partial_app_schema(&app);
    // An app that `extends` another needs no program key of its own.
    if let Value::Object(m) = &mut app
        && let Some(one_of) = m.remove("oneOf")
    {
        m.insert(
            "anyOf".into(),
            json!([{"required": ["extends"]}, {"oneOf": one_of}]),
        );
    }
    let mut pypm = table_schema(PYPM_KEYS, None);
    if let Value::Object(m) = &mut pypm {
        m.insert("description".into(), "supervisor-wide settings".into());
    }
    let profile = profile_schema(pypm.clone(), partial_app);
    let environment = table_schema(ENVIRONMENT_KEYS, Some(ENVIRONMENT_KINDS));
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://pypm.dev/schema/pypm.schema.json",
        "title": "pypm.toml",
        "description": "pypm: a declarative process supervisor for Python services",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "include": {
                "description": "files merged into this one, in order (paths relative to this file; globs sorted)",
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}},
                ],
            },
            "profiles": {
                "type": "object",
                "description": "per-environment overrides: [profiles.NAME.pypm], [profiles.NAME.apps.APP]",
                "additionalProperties": profile,
            },
            "pypm": pypm,
            "environments": {
                "type": "object",
                "description": "named Python environments (exactly one of venv / conda / python)",
                "propertyNames": {"pattern": APP_NAME_PATTERN},
                "additionalProperties": environment,
            },
            "apps": {
                "type": "object",
                "description": "the apps pypm keeps running",
                "propertyNames": {"pattern": APP_NAME_PATTERN},
                "additionalProperties": app,
            },
            "notify": {
                "type": "array",
                "description": "notifiers",
                "items": notify_schema(),
            },
        },
    })
}

/// `[apps.NAME]`: exactly one program key, the probes with exactly one kind each.
fn app_schema() -> Value {
    let mut app = table_schema(APP_KEYS, Some(PROGRAM_KEYS));
    if let Value::Object(m) = &mut app
        && let Some(Value::Object(props)) = m.get_mut("properties")
    {
        props.insert(
            "ready".into(),
            probe_schema(
                READY_KEYS,
                "readiness probe: exactly one of http / tcp / exec / log / notify",
            ),
        );
        props.insert(
            "health".into(),
            probe_schema(
                HEALTH_KEYS,
                "liveness probe: exactly one of http / tcp / exec / log / notify",
            ),
        );
    }
    if let Value::Object(m) = &mut app {
        // `args` is for `script` / `module`; a `command` has its arguments in it.
        m.insert(
            "dependencies".into(),
            json!({"args": {"not": {"required": ["command"]}}}),
        );
    }
    app
}

/// A profile's app: any app key, none required (it is laid over the app of the same name).
fn partial_app_schema(app: &Value) -> Value {
    let mut partial_app = app.clone();
    if let Value::Object(m) = &mut partial_app {
        m.remove("oneOf");
        m.remove("dependencies");
        // A profile may change one key of a probe (its check stays the app's).
        if let Some(Value::Object(props)) = m.get_mut("properties") {
            for probe in ["ready", "health"] {
                if let Some(Value::Object(p)) = props.get_mut(probe) {
                    p.remove("oneOf");
                    p.remove("anyOf");
                }
            }
        }
    }
    partial_app
}

/// `[profiles.NAME]`: `[pypm]` keys and partial apps.
fn profile_schema(pypm: Value, partial_app: Value) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "laid over the file when the profile is active (`pypm --profile NAME`, $PYPM_PROFILE)",
        "properties": {
            "pypm": pypm,
            "apps": {
                "type": "object",
                "propertyNames": {"pattern": APP_NAME_PATTERN},
                "additionalProperties": partial_app,
            },
        },
    })
}

/// One `[[notify]]` entry: exactly one kind, `email` with `smtp`, `events` from [`EVENT_NAMES`].
fn notify_schema() -> Value {
    let mut notify = table_schema(NOTIFY_KEYS, Some(NOTIFY_KINDS));
    if let Value::Object(m) = &mut notify
        && let Some(Value::Object(props)) = m.get_mut("properties")
    {
        props.insert(
            "events".into(),
            json!({"type": "array", "items": {"enum": EVENT_NAMES},
                   "description": "event names to send (default: all)"}),
        );
    }
    if let Value::Object(m) = &mut notify {
        m.insert("dependencies".into(), json!({"email": ["smtp"]}));
    }
    notify
}

fn probe_schema(keys: &[Key], doc: &str) -> Value {
    let mut s = table_schema(keys, None);
    if let Value::Object(m) = &mut s {
        m.insert("description".into(), doc.into());
        // Exactly one kind is present (the reader does not count `notify = false`).
        let kinds: Vec<Value> = PROBE_KINDS
            .iter()
            .map(|k| match *k {
                "notify" => json!({"required": [k], "properties": {"notify": {"const": true}}}),
                _ => json!({"required": [k]}),
            })
            .collect();
        m.insert("oneOf".into(), Value::Array(kinds));
    }
    s
}

/// The schema as `pypm schema` prints it and `schema/pypm.schema.json` stores it.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}
