//! Structure-aware: the fuzzer's bytes choose a `pypm.toml` from the key registry
//! (`pypm::config::keys`) — apps, `[pypm]`, probes, profiles, `extends` and `depends_on` between
//! the apps — with values of each key's type, mostly valid and sometimes not, so the input reaches
//! validation and resolution instead of stopping at the TOML parser. Then `pypm check`'s path, as
//! the `config` target runs it; oracle: no panic, and a file compared with itself changes nothing.
#![no_main]
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pypm::config::keys::{self, Key, Ty};
use toml::{Table, Value};

const NAMES: &[&str] = &["web", "worker", "db", "migrate", "api", "x-1"];
const WORDS: &[&str] = &[
    "", "sleep 1000", "python -m http.server", "app.py", "pkg.mod", "web", "worker", "${HOME}/x",
    "127.0.0.1:8000", "http://127.0.0.1:8000/health", "^ready$", "[", "SIGTERM", "SIGKILL", "TERM",
    "always", "on-failure", "never", "10M", "1s", "500ms", "0", "-1", "python3.12", "uv", "/bin/sh",
    "*/5 * * * *", "@daily", "Europe/Paris", "ready", "started", "completed", "a b 'c d'",
];

fn word(u: &mut Unstructured) -> Result<String> {
    Ok((*u.choose(WORDS)?).to_string())
}

fn duration(u: &mut Unstructured) -> Result<Value> {
    let n: u16 = u.arbitrary()?;
    let unit = *u.choose(&["ms", "s", "m", "h", "", "x"])?;
    Ok(Value::String(format!("{n}{unit}")))
}

/// A value of type `ty` (one in eight: any value of another type).
fn value(u: &mut Unstructured, ty: &Ty, depth: u8) -> Result<Value> {
    if u.ratio(1, 8)? {
        return match u.int_in_range(0..=3)? {
            0 => Ok(Value::Integer(u.arbitrary()?)),
            1 => Ok(Value::Boolean(u.arbitrary()?)),
            2 => Ok(Value::String(word(u)?)),
            _ => Ok(Value::Array(vec![Value::String(word(u)?)])),
        };
    }
    Ok(match ty {
        Ty::Str | Ty::Text | Ty::Interpreter | Ty::Regex => Value::String(word(u)?),
        Ty::Bool => Value::Boolean(u.arbitrary()?),
        Ty::Int { min, max } => Value::Integer(u.int_in_range(min.saturating_sub(2)..=max.saturating_add(2))?),
        Ty::PositiveNumber => Value::Float(f64::from(u.int_in_range(-2i16..=400)?) / 4.0),
        Ty::Duration | Ty::ProbeDuration => duration(u)?,
        Ty::Size => {
            let n: u16 = u.arbitrary()?;
            Value::String(format!("{n}{}", u.choose(&["", "K", "M", "G", "KiB", "q"])?))
        }
        Ty::Command | Ty::StrOrStrList | Ty::StrList => {
            if u.arbitrary()? {
                Value::String(word(u)?)
            } else {
                let n = u.int_in_range(0..=3)?;
                Value::Array((0..n).map(|_| word(u).map(Value::String)).collect::<Result<_>>()?)
            }
        }
        Ty::IntList { min, max } => {
            let n = u.int_in_range(0..=3)?;
            Value::Array(
                (0..n)
                    .map(|_| u.int_in_range(min.saturating_sub(1)..=max.saturating_add(1)).map(Value::Integer))
                    .collect::<Result<_>>()?,
            )
        }
        Ty::EnvMap => {
            let mut t = Table::new();
            for _ in 0..u.int_in_range(0..=3)? {
                let k = *u.choose(&["A", "B", "PATH", "PYTHONPATH", "X_1", "lower"])?;
                t.insert(k.into(), Value::String(word(u)?));
            }
            Value::Table(t)
        }
        Ty::Enum(options) => Value::String((*u.choose(options)?).to_string()),
        Ty::DependsOn => {
            if u.arbitrary()? {
                let n = u.int_in_range(0..=3)?;
                Value::Array((0..n).map(|_| u.choose(NAMES).map(|s| Value::String((*s).into()))).collect::<Result<_>>()?)
            } else {
                let mut t = Table::new();
                for _ in 0..u.int_in_range(0..=3)? {
                    let cond = *u.choose(keys::CONDITIONS)?;
                    t.insert((*u.choose(NAMES)?).into(), Value::String(cond.into()));
                }
                Value::Table(t)
            }
        }
        Ty::Signal => Value::String((*u.choose(&["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "TERM", "SIGNOPE"])?).into()),
        Ty::Table(sub) => Value::Table(table(u, sub, depth + 1)?),
    })
}

/// A table of keys from `registry` (now and then an unknown key).
fn table(u: &mut Unstructured, registry: &[Key], depth: u8) -> Result<Table> {
    let mut t = Table::new();
    if depth > 3 || registry.is_empty() {
        return Ok(t);
    }
    for _ in 0..u.int_in_range(0..=6)? {
        if u.ratio(1, 20)? {
            t.insert("not_a_key".into(), Value::Integer(1));
            continue;
        }
        let key = u.choose(registry)?;
        t.insert(key.name.into(), value(u, &key.ty, depth)?);
    }
    Ok(t)
}

fn app(u: &mut Unstructured) -> Result<Table> {
    let mut t = table(u, keys::APP_KEYS, 0)?;
    // Most apps have a program, as real ones do (so validation goes past "no command").
    if !t.contains_key("command") && !t.contains_key("script") && !t.contains_key("module") && u.ratio(3, 4)? {
        t.insert("command".into(), Value::String("sleep 1000".into()));
    }
    Ok(t)
}

fn apps(u: &mut Unstructured) -> Result<Table> {
    let mut t = Table::new();
    for _ in 0..u.int_in_range(0..=4)? {
        t.insert((*u.choose(NAMES)?).into(), Value::Table(app(u)?));
    }
    Ok(t)
}

fn document(u: &mut Unstructured) -> Result<Table> {
    let mut doc = Table::new();
    if u.arbitrary()? {
        doc.insert("pypm".into(), Value::Table(table(u, keys::PYPM_KEYS, 0)?));
    }
    doc.insert("apps".into(), Value::Table(apps(u)?));
    if u.ratio(1, 3)? {
        let mut profiles = Table::new();
        for _ in 0..u.int_in_range(1..=2)? {
            let mut p = Table::new();
            p.insert("apps".into(), Value::Table(apps(u)?));
            profiles.insert((*u.choose(&["dev", "prod"])?).into(), Value::Table(p));
        }
        doc.insert("profiles".into(), Value::Table(profiles));
    }
    Ok(doc)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(doc) = document(&mut u) else { return };
    let Ok(text) = toml::to_string(&doc) else { return };
    let dir = std::env::temp_dir().join("pypm-fuzz-config-structured");
    let _ = std::fs::create_dir_all(&dir);
    let host = pypm::desired::python_env::HostEnv::new([("PATH", "/usr/bin:/bin")], None);
    match pypm::desired::resolve::from_source(&text, &dir.join("pypm.toml"), "pypm.toml", &host) {
        Ok(d) => {
            let _ = pypm::supervisor::diff::diff(&d.apps, &d.apps);
        }
        Err(e) => {
            let _ = e.render();
            let _ = e.summary();
        }
    }
});
