//! `${VAR}` expansion (`$$` is a literal `$`) and `env_file` parsing.

use std::collections::HashMap;

/// Variables visible to an expansion: layers searched from the last to the first.
#[derive(Default, Clone)]
pub struct Vars<'a> {
    layers: Vec<&'a HashMap<String, String>>,
}

impl<'a> Vars<'a> {
    pub fn new(base: &'a HashMap<String, String>) -> Self {
        Vars { layers: vec![base] }
    }

    pub fn with(&self, layer: &'a HashMap<String, String>) -> Self {
        let mut layers = self.layers.clone();
        layers.push(layer);
        Vars { layers }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.get(name).map(String::as_str))
    }
}

/// An expansion failure: the variable and its byte offset within the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Undefined {
    pub name: String,
    pub offset: usize,
}

/// Expands `${VAR}` and `$$`. A `$` followed by anything else is kept as written.
pub fn expand(input: &str, vars: &Vars) -> Result<String, Undefined> {
    expand_with(input, |name, offset| {
        vars.get(name).map(str::to_string).ok_or_else(|| Undefined {
            name: name.to_string(),
            offset,
        })
    })
}

/// Expands `${VAR}` and `$$`, asking `lookup` for each variable's value (given its name and the
/// byte offset of its `$`).
pub fn expand_with<'s, E>(
    input: &'s str,
    mut lookup: impl FnMut(&'s str, usize) -> Result<String, E>,
) -> Result<String, E> {
    if !input.contains('$') {
        return Ok(input.to_string());
    }
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let bytes = input.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if bytes.get(i + 1) == Some(&b'$') {
                out.push('$');
                i += 2;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'{')
                && let Some(close) = input[i + 2..].find('}')
            {
                let name = &input[i + 2..i + 2 + close];
                out.push_str(&lookup(name, i)?);
                i += close + 3;
                continue;
            }
        }
        let ch_len = input[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&input[i..i + ch_len]);
        i += ch_len;
    }
    Ok(out)
}

/// The names `input` references as `${NAME}` (a `$$` is not one), in order.
pub fn references(input: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = expand_with(input, |name, _| {
        names.push(name.to_string());
        Ok::<_, ()>(String::new())
    });
    names
}

/// Why one `env` value could not be expanded.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvValueError {
    /// A variable defined nowhere.
    Undefined(Undefined),
    /// The keys of a reference cycle, starting with this key (`X1`, `X2` for `X1 → X2 → X1`).
    /// Only the cycle's first key (in table order) carries it; its other keys get `Dependency`.
    Cycle(Vec<String>),
    /// The value references a key that failed, which carries the error.
    Dependency,
}

/// Expands the values of one app's `env` table, which may reference each other in any order:
/// `${NAME}` is the (expanded) value of the key `NAME` of the same table when there is one, else
/// it comes from `lower`. A value that names its own key gets `lower`'s value, so
/// `PATH = "/x:${PATH}"` extends the inherited `PATH`. One result per entry, in order.
pub fn expand_env(
    entries: &[(String, String)],
    lower: &Vars,
) -> Vec<Result<String, EnvValueError>> {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = entries
        .iter()
        .map(|(key, raw)| {
            let mut d: Vec<usize> = references(raw)
                .iter()
                .filter(|n| *n != key)
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let edges: Vec<(String, String)> = deps
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            d.iter()
                .map(move |&j| (entries[i].0.clone(), entries[j].0.clone()))
        })
        .collect();
    let mut out: Vec<Option<Result<String, EnvValueError>>> =
        entries.iter().map(|_| None).collect();
    for cycle in crate::desired::graph::cycles(entries.iter().map(|(k, _)| k.as_str()), &edges) {
        for (n, name) in cycle.iter().enumerate() {
            if let Some(&i) = index.get(name.as_str()) {
                out[i] = Some(Err(if n == 0 {
                    EnvValueError::Cycle(cycle.clone())
                } else {
                    EnvValueError::Dependency
                }));
            }
        }
    }
    // Expand in dependency order: a value once every key it references is done.
    let mut progress = true;
    while progress {
        progress = false;
        for i in 0..entries.len() {
            if out[i].is_some() || deps[i].iter().any(|&j| out[j].is_none()) {
                continue;
            }
            progress = true;
            if deps[i].iter().any(|&j| matches!(out[j], Some(Err(_)))) {
                out[i] = Some(Err(EnvValueError::Dependency));
                continue;
            }
            let (key, raw) = &entries[i];
            let value = expand_with(raw, |name, offset| {
                let own = index.get(name).filter(|_| name != key.as_str());
                match own.and_then(|&j| out[j].as_ref()) {
                    Some(Ok(v)) => Ok(v.clone()),
                    _ => lower
                        .get(name)
                        .map(str::to_string)
                        .ok_or_else(|| Undefined {
                            name: name.to_string(),
                            offset,
                        }),
                }
            });
            out[i] = Some(value.map_err(EnvValueError::Undefined));
        }
    }
    // What is left references a cycle it is not part of.
    out.into_iter()
        .map(|r| r.unwrap_or(Err(EnvValueError::Dependency)))
        .collect()
}

/// A line of an env file that could not be understood.
#[derive(Debug, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

/// Parses `KEY=VALUE` lines: `#` comments, blank lines, an optional `export ` prefix, and values
/// optionally in single or double quotes (double quotes understand `\n`, `\"` and `\\`).
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(EnvFileError {
                line: n + 1,
                message: format!("expected KEY=VALUE, found `{line}`"),
            });
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(EnvFileError {
                line: n + 1,
                message: format!("invalid variable name `{key}`"),
            });
        }
        out.push((key.to_string(), unquote(value.trim())));
    }
    Ok(out)
}

fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        return v[1..v.len() - 1].to_string();
    }
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let inner = &v[1..v.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    // An unquoted value ends at ` #` (an inline comment).
    match v.find(" #") {
        Some(i) => v[..i].trim_end().to_string(),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([
            ("HOME".to_string(), "/home/u".to_string()),
            ("PORT".to_string(), "8000".to_string()),
        ])
    }

    #[test]
    fn expands_braced_variables_and_dollar_dollar() {
        let v = vars();
        let vars = Vars::new(&v);
        let cases = [
            ("${HOME}/app", "/home/u/app"),
            ("port=${PORT}", "port=8000"),
            ("cost $$5", "cost $5"),
            ("$$${PORT}", "$8000"),
            ("plain $HOME", "plain $HOME"),
            ("no vars", "no vars"),
            ("ünï ${PORT}", "ünï 8000"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn undefined_variable_reports_name_and_offset() {
        let v = vars();
        assert_eq!(
            expand("a ${NOPE} b", &Vars::new(&v)),
            Err(Undefined {
                name: "NOPE".into(),
                offset: 2
            })
        );
    }

    #[test]
    fn later_layers_win() {
        let base = vars();
        let over = HashMap::from([("PORT".to_string(), "9000".to_string())]);
        let v = Vars::new(&base);
        let v = v.with(&over);
        assert_eq!(expand("${PORT}", &v).as_deref(), Ok("9000"));
    }

    #[test]
    fn env_file_lines() {
        let text = "# c\n\nA=1\nexport B = two words\nC=\"x\\ny\"\nD='$raw'\nE=v # note\n";
        assert_eq!(
            parse_env_file(text),
            Ok(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x\ny".into()),
                ("D".into(), "$raw".into()),
                ("E".into(), "v".into()),
            ])
        );
        assert_eq!(
            parse_env_file("A=1\nnonsense\n").map_err(|e| e.line),
            Err(2)
        );
    }
}
