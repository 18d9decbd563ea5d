//! `KEY=VALUE` from the command line, typed by the key registry (`config::keys`): `instances=3`
//! is an integer, `memory_max=512M` a string, `watch=**/*.py` a list, `env.DEBUG=1` the string
//! `"1"`. A value that is itself TOML (`[...]`, `{...}`, a quoted string) is taken as written.
//! What the registry does not know is written as a string: the reader then names the key with
//! `did you mean`, at its line and column, and nothing is written.

use toml_edit::{Array, Value};

use crate::config::keys::{self, Key, Ty};

/// `KEY=VALUE` split into the dotted key path and the raw value.
pub fn split_assignment(arg: &str) -> Result<(Vec<String>, String), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}` is not KEY=VALUE"))?;
    Ok((split_key(key)?, value.to_string()))
}

/// `env.DEBUG` → `["env", "DEBUG"]`; every part non-empty.
pub fn split_key(key: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = key.trim().split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("`{key}` is not a key (empty part)"));
    }
    Ok(parts)
}

/// The registry entry for `path` among the app keys (following `ready.` / `health.`), and
/// whether the path goes inside a table of free names (`env.NAME`, `depends_on.NAME`).
fn lookup(path: &[String]) -> Option<(Key, bool)> {
    let mut table = keys::APP_KEYS;
    let mut found = None;
    for (i, part) in path.iter().enumerate() {
        let k = *table.iter().find(|k| k.name == part)?;
        found = Some(k);
        match k.ty {
            Ty::Table(sub) => table = sub,
            Ty::EnvMap | Ty::DependsOn if i + 1 < path.len() => return Some((k, true)),
            _ if i + 1 < path.len() => return None,
            _ => {}
        }
    }
    found.map(|k| (k, false))
}

/// The TOML value for `raw` at `path`.
pub fn typed(path: &[String], raw: &str) -> Value {
    let literal = || raw.trim().parse::<Value>().ok();
    let t = raw.trim();
    if t.starts_with(['[', '{', '"', '\''])
        && let Some(v) = literal()
    {
        return v;
    }
    let Some((key, inside)) = lookup(path) else {
        return Value::from(raw);
    };
    if inside {
        // An env value or a dependency's condition: strings.
        return Value::from(raw);
    }
    match key.ty {
        Ty::Bool => match t {
            "true" | "yes" | "on" | "1" => Value::from(true),
            "false" | "no" | "off" | "0" => Value::from(false),
            _ => Value::from(raw),
        },
        Ty::Int { .. } => t
            .parse::<i64>()
            .map_or_else(|_| Value::from(raw), Value::from),
        Ty::PositiveNumber | Ty::Duration | Ty::ProbeDuration | Ty::Size => {
            number(t).unwrap_or_else(|| Value::from(raw))
        }
        Ty::StrList => list(std::iter::once(raw.to_string())),
        Ty::IntList { .. } => {
            let ints: Result<Vec<i64>, _> = t.split(',').map(|x| x.trim().parse::<i64>()).collect();
            match ints {
                Ok(v) => Value::Array(v.into_iter().collect::<Array>()),
                Err(_) => Value::from(raw),
            }
        }
        Ty::DependsOn => list(t.split(',').map(|x| x.trim().to_string())),
        _ => Value::from(raw),
    }
}

fn number(t: &str) -> Option<Value> {
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::from)
}

fn list(items: impl Iterator<Item = String>) -> Value {
    Value::Array(items.collect::<Array>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(assign: &str) -> String {
        let (path, raw) = split_assignment(assign).unwrap_or_else(|e| panic!("{e}"));
        typed(&path, &raw).to_string().trim().to_string()
    }

    #[test]
    fn values_are_typed_by_the_registry() {
        assert_eq!(ty("instances=3"), "3");
        assert_eq!(ty("memory_max=512M"), "\"512M\"");
        assert_eq!(ty("memory_max=1048576"), "1048576");
        assert_eq!(ty("restart=on-failure"), "\"on-failure\"");
        assert_eq!(ty("enabled=false"), "false");
        assert_eq!(ty("cpu_max=1.5"), "1.5");
        assert_eq!(ty("env.DEBUG=1"), "\"1\"");
        assert_eq!(ty("watch=**/*.py"), "[\"**/*.py\"]");
        assert_eq!(ty("success_exit_codes=0,3"), "[0, 3]");
        assert_eq!(ty("depends_on=db,cache"), "[\"db\", \"cache\"]");
        assert_eq!(ty("ready.http=http://x/h"), "\"http://x/h\"");
        assert_eq!(ty("ready.interval=2"), "2");
        assert_eq!(ty("health.failures=5"), "5");
        assert_eq!(ty("revision=12"), "\"12\"");
        assert_eq!(ty("command=gunicorn app:app"), "\"gunicorn app:app\"");
    }

    #[test]
    fn toml_literals_are_taken_as_written() {
        assert_eq!(
            ty("listen=[\"tcp://a:1\", \"tcp://b:2\"]"),
            "[\"tcp://a:1\", \"tcp://b:2\"]"
        );
        assert_eq!(ty("env={ A = \"1\" }"), "{ A = \"1\" }");
        assert_eq!(ty("revision=\"7\""), "\"7\"");
    }

    #[test]
    fn unknown_keys_and_bad_values_stay_strings_for_the_reader_to_reject() {
        assert_eq!(ty("comand=x"), "\"x\"");
        assert_eq!(ty("instances=many"), "\"many\"");
        assert_eq!(ty("nice.x=1"), "\"1\"");
    }

    #[test]
    fn malformed_assignments() {
        assert!(split_assignment("instances").is_err());
        assert!(split_assignment("env..X=1").is_err());
        assert!(split_assignment("=1").is_err());
        assert_eq!(
            split_assignment("env.A=b=c")
                .map(|x| x.1)
                .unwrap_or_default(),
            "b=c"
        );
    }
}
