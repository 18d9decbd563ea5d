//! The merged table as plain TOML values, for `pypm config` (the whole table, or one line per
//! leaf with where it came from).

use toml::de::{DeTable, DeValue};

/// A merged value as a plain TOML value (for `pypm config`).
pub fn to_value(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            let digits = digits
                .trim_start_matches("0x")
                .trim_start_matches("0o")
                .trim_start_matches("0b");
            toml::Value::Integer(i64::from_str_radix(digits, i.radix()).unwrap_or_default())
        }
        DeValue::Float(f) => {
            let t = f.as_str().replace('_', "");
            let x = match t.as_str() {
                "inf" | "+inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" | "+nan" | "-nan" => f64::NAN,
                other => other.parse().unwrap_or_default(),
            };
            toml::Value::Float(x)
        }
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_value(x.get_ref())).collect()),
        DeValue::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, v)| (k.get_ref().as_ref().to_string(), to_value(v.get_ref())))
                .collect(),
        ),
    }
}

/// Every leaf of the merged table: (dotted key, value, span start), for `pypm config -v`.
pub fn leaves(t: &DeTable<'_>) -> Vec<(String, toml::Value, usize)> {
    fn bare(k: &str) -> String {
        if !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            k.to_string()
        } else {
            format!("{k:?}")
        }
    }
    fn walk(prefix: &str, t: &DeTable<'_>, out: &mut Vec<(String, toml::Value, usize)>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                bare(k.get_ref().as_ref())
            } else {
                format!("{prefix}.{}", bare(k.get_ref().as_ref()))
            };
            match v.get_ref() {
                DeValue::Table(inner) if !inner.is_empty() => walk(&key, inner, out),
                other => out.push((key, to_value(other), v.span().start)),
            }
        }
    }
    let mut out = Vec::new();
    walk("", t, &mut out);
    out
}
