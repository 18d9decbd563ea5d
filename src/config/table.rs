//! The reading primitives: collected diagnostics (`Cx`) and one table checked against the key
//! registry (`Table`), handing out typed values.

use std::sync::LazyLock;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::expand::{self, Vars};
use super::keys::{self, Key, Ty};
use super::units::{parse_duration, parse_size};
use crate::diagnostic::{Diagnostic, Span, did_you_mean};

pub(super) type Val<'i> = Spanned<DeValue<'i>>;

pub(super) static APP_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(keys::APP_NAME_PATTERN).unwrap_or_else(|_| unreachable!("constant pattern"))
});

pub const SIGNALS: &[&str] = &[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// Collected errors plus the source, for precise positions inside strings.
pub(super) struct Cx<'s> {
    pub(super) src: &'s str,
    pub(super) diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    pub(super) fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::new(msg, Some(span)));
    }

    pub(super) fn err_help(&mut self, span: Span, msg: impl Into<String>, help: Option<String>) {
        self.diags
            .push(Diagnostic::new(msg, Some(span)).with_help_opt(help));
    }

    /// The span of `${NAME}` inside the string at `span`, when it can be found.
    pub(super) fn var_span(&self, span: &Span, name: &str) -> Span {
        let needle = format!("${{{name}}}");
        self.src
            .get(span.clone())
            .and_then(|raw| raw.find(&needle))
            .map(|i| span.start + i..span.start + i + needle.len())
            .unwrap_or(span.clone())
    }

    /// Reports `${name}` in the string at `span` as undefined.
    pub(super) fn undefined(&mut self, span: &Span, name: &str, what: &str) {
        let at = self.var_span(span, name);
        if name.is_empty() {
            self.err_help(
                at,
                format!("empty variable name `${{}}` in {what}"),
                Some("write `${NAME}`, or `$$` for a literal `$`".into()),
            );
            return;
        }
        self.err_help(
            at,
            format!("undefined variable `{name}` in {what}"),
            Some("set it in the environment, in `env` or an `env_file`, or write `$$` for a literal `$`".into()),
        );
    }

    /// `value` expanded; `None` when a variable is undefined (reported).
    pub(super) fn try_expand(
        &mut self,
        value: &str,
        span: &Span,
        vars: &Vars,
        what: &str,
    ) -> Option<String> {
        match expand::expand(value, vars) {
            Ok(v) => Some(v),
            Err(u) => {
                self.undefined(span, &u.name, what);
                None
            }
        }
    }

    /// `value` expanded; as written when a variable is undefined (reported).
    pub(super) fn expand(&mut self, value: &str, span: &Span, vars: &Vars, what: &str) -> String {
        self.try_expand(value, span, vars, what)
            .unwrap_or_else(|| value.to_string())
    }
}

pub(super) fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(super) fn int_of(v: &DeValue) -> Option<i64> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// The text of a number or boolean, as a user would write it.
pub(super) fn scalar_text(v: &DeValue) -> Option<String> {
    match v {
        DeValue::Integer(_) => int_of(v).map(|i| i.to_string()),
        DeValue::Float(f) => Some(f.as_str().to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::String(s) => Some(s.to_string()),
        _ => None,
    }
}

pub(super) fn float_of(v: &DeValue) -> Option<f64> {
    match v {
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        DeValue::Integer(_) => int_of(v).map(|i| i as f64),
        _ => None,
    }
}

/// One table being read: checks its keys against the registry and hands out typed values.
pub(super) struct Table<'a, 'i> {
    pub(super) t: &'a DeTable<'i>,
    /// e.g. "app `api`", for messages.
    pub(super) ctx: String,
    pub(super) keys: &'static [Key],
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn new(cx: &mut Cx, t: &'a DeTable<'i>, ctx: String, keys: &'static [Key]) -> Self {
        for (k, _) in t.iter() {
            let name: &str = k.get_ref();
            if !keys.iter().any(|key| key.name == name) {
                cx.err_help(
                    k.span(),
                    format!("unknown key `{name}` in {ctx}"),
                    did_you_mean(name, keys::names(keys)),
                );
            }
        }
        Table { t, ctx, keys }
    }

    pub(super) fn get(&self, name: &str) -> Option<&'a Val<'i>> {
        debug_assert!(
            self.keys.iter().any(|k| k.name == name),
            "key `{name}` read but not registered"
        );
        self.t.get(name)
    }

    pub(super) fn span_of(&self, name: &str) -> Option<Span> {
        self.get(name).map(|v| v.span())
    }

    pub(super) fn wrong(&self, cx: &mut Cx, name: &str, expected: &str, v: &Val) {
        cx.err(
            v.span(),
            format!(
                "`{name}` in {} must be {expected}, found {}",
                self.ctx,
                type_name(v.get_ref())
            ),
        );
    }

    pub(super) fn str(&self, cx: &mut Cx, name: &str) -> Option<(String, Span)> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            _ => {
                self.wrong(cx, name, "a string", v);
                None
            }
        }
    }

    /// A string, `${VAR}`-expanded.
    pub(super) fn estr(&self, cx: &mut Cx, name: &str, vars: &Vars) -> Option<(String, Span)> {
        let (s, span) = self.str(cx, name)?;
        let what = format!("`{name}` of {}", self.ctx);
        Some((cx.expand(&s, &span, vars, &what), span))
    }

    pub(super) fn bool(&self, cx: &mut Cx, name: &str) -> Option<bool> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong(cx, name, "true or false", v);
                None
            }
        }
    }

    pub(super) fn int(&self, cx: &mut Cx, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        let Some(Ty::Int { min, max }) = self.keys.iter().find(|k| k.name == name).map(|k| k.ty)
        else {
            return None;
        };
        match int_of(v.get_ref()) {
            Some(i) if (min..=max).contains(&i) => Some(i),
            Some(i) => {
                cx.err(
                    v.span(),
                    format!(
                        "`{name}` in {} must be between {min} and {max}, found {i}",
                        self.ctx
                    ),
                );
                None
            }
            None => {
                self.wrong(cx, name, "an integer", v);
                None
            }
        }
    }

    pub(super) fn duration(&self, cx: &mut Cx, name: &str) -> Option<Duration> {
        let v = self.get(name)?;
        let parsed = match v.get_ref() {
            DeValue::String(s) => parse_duration(s),
            DeValue::Integer(_) | DeValue::Float(_) => match float_of(v.get_ref()) {
                Some(f) if f >= 0.0 && f.is_finite() && f < 1.0e9 => Ok(Duration::from_secs_f64(f)),
                _ => Err(format!(
                    "invalid duration `{}`",
                    scalar_text(v.get_ref()).unwrap_or_default()
                )),
            },
            _ => {
                self.wrong(
                    cx,
                    name,
                    "a duration (\"500ms\", \"10s\", \"5m\", \"1h\" or seconds)",
                    v,
                );
                return None;
            }
        };
        let probe = self
            .keys
            .iter()
            .any(|k| k.name == name && k.ty == Ty::ProbeDuration);
        match parsed {
            Ok(d) if probe && d < Duration::from_millis(1) => {
                let text = scalar_text(v.get_ref()).unwrap_or_default();
                cx.err_help(
                    v.span(),
                    format!(
                        "`{name}` in {} must be at least 1ms, found `{text}`",
                        self.ctx
                    ),
                    Some(if name == "interval" {
                        "with no pause between attempts the probe would run in a busy loop".into()
                    } else {
                        "a probe given no time cannot succeed".into()
                    }),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                cx.err(v.span(), format!("{e} for `{name}` in {}", self.ctx));
                None
            }
        }
    }

    pub(super) fn size(&self, cx: &mut Cx, name: &str) -> Option<u64> {
        let v = self.get(name)?;
        let parsed = match v.get_ref() {
            DeValue::String(s) => parse_size(s),
            DeValue::Integer(_) => match int_of(v.get_ref()) {
                Some(i) if i >= 0 => Ok(i as u64),
                _ => Err("invalid size".to_string()),
            },
            _ => {
                self.wrong(cx, name, "a size (\"512K\", \"10M\", \"1G\" or bytes)", v);
                return None;
            }
        };
        match parsed {
            Ok(b) => Some(b),
            Err(e) => {
                cx.err(v.span(), format!("{e} for `{name}` in {}", self.ctx));
                None
            }
        }
    }

    pub(super) fn number(&self, cx: &mut Cx, name: &str) -> Option<f64> {
        let v = self.get(name)?;
        match float_of(v.get_ref()) {
            Some(f) if f > 0.0 && f.is_finite() => Some(f),
            Some(f) => {
                cx.err(
                    v.span(),
                    format!("`{name}` in {} must be positive, found {f}", self.ctx),
                );
                None
            }
            None => {
                self.wrong(cx, name, "a number", v);
                None
            }
        }
    }

    /// A list of strings (each expanded when `vars` is given), with each element's span.
    pub(super) fn str_list(
        &self,
        cx: &mut Cx,
        name: &str,
        vars: Option<&Vars>,
    ) -> Option<Vec<(String, Span)>> {
        let v = self.get(name)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(cx, name, "an array of strings", v);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => {
                    let s = match vars {
                        Some(vars) => {
                            let what = format!("`{name}` of {}", self.ctx);
                            cx.expand(s, &item.span(), vars, &what)
                        }
                        None => s.to_string(),
                    };
                    out.push((s, item.span()));
                }
                other => cx.err(
                    item.span(),
                    format!(
                        "`{name}` in {} must contain only strings, found {}",
                        self.ctx,
                        type_name(other)
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A string or a list of strings, not expanded, with each string's span.
    pub(super) fn raw_str_or_list(&self, cx: &mut Cx, name: &str) -> Option<Vec<(String, Span)>> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![(s.to_string(), v.span())]),
            DeValue::Array(_) => self.str_list(cx, name, None),
            _ => {
                self.wrong(cx, name, "a string or an array of strings", v);
                None
            }
        }
    }

    /// A command: a string split like a POSIX shell, or an array; each word expanded.
    pub(super) fn command(&self, cx: &mut Cx, name: &str, vars: &Vars) -> Option<Vec<String>> {
        let v = self.get(name)?;
        let words: Vec<String> = match v.get_ref() {
            DeValue::String(s) => match shell_words::split(s) {
                Ok(w) => w
                    .into_iter()
                    .map(|w| {
                        let what = format!("`{name}` of {}", self.ctx);
                        cx.expand(&w, &v.span(), vars, &what)
                    })
                    .collect(),
                Err(e) => {
                    cx.err(
                        v.span(),
                        format!("cannot split `{name}` of {}: {e}", self.ctx),
                    );
                    return None;
                }
            },
            DeValue::Array(_) => self
                .str_list(cx, name, Some(vars))?
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            _ => {
                self.wrong(cx, name, "a string or an array of strings", v);
                return None;
            }
        };
        if words.is_empty() {
            cx.err(v.span(), format!("`{name}` of {} is empty", self.ctx));
            return None;
        }
        Some(words)
    }

    pub(super) fn enumerated(
        &self,
        cx: &mut Cx,
        name: &str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let (s, span) = self.str(cx, name)?;
        match allowed.iter().find(|a| **a == s) {
            Some(a) => Some(a),
            None => {
                let list = allowed.join(", ");
                cx.err_help(
                    span,
                    format!(
                        "invalid `{name}` `{s}` in {} (expected one of {list})",
                        self.ctx
                    ),
                    did_you_mean(&s, allowed.iter().copied()),
                );
                None
            }
        }
    }

    pub(super) fn sub_table(&self, cx: &mut Cx, name: &str) -> Option<(&'a DeTable<'i>, Span)> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            _ => {
                self.wrong(cx, name, "a table", v);
                None
            }
        }
    }
}
