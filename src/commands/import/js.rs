//! A reader for the object literal of a PM2 `ecosystem.config.js`, without running JavaScript.
//!
//! Only a plain literal is accepted: objects (quoted or bare keys), arrays, strings in `'`, `"` or
//! `` ` `` (no `${}`), numbers, `true`/`false`/`null`, comments and trailing commas. Anything else
//! (a variable, `require`, `process.env`, a function call) is reported with its position, so the
//! caller can suggest converting the file with node instead.

use serde_json::{Map, Number, Value};

/// Why the file is not a plain literal; `line`/`column` are 1-based.
#[derive(Debug, Clone, PartialEq)]
pub struct NotLiteral {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Finds `module.exports =` (or `export default`) and parses the literal after it.
pub fn exports_literal(source: &str) -> Result<Value, NotLiteral> {
    let start = find_exports(source).ok_or_else(|| NotLiteral {
        message: "no `module.exports = {...}` (or `export default {...}`) found".into(),
        line: 1,
        column: 1,
    })?;
    let mut p = Parser {
        src: source,
        pos: start,
    };
    let value = p.value()?;
    p.skip_trivia()?;
    while p.peek() == Some(';') {
        p.pos += 1;
        p.skip_trivia()?;
    }
    if p.pos < source.len() {
        return Err(p.error("code after the exported literal"));
    }
    Ok(value)
}

/// The byte offset just after `module.exports =` / `export default`, outside comments and strings.
fn find_exports(source: &str) -> Option<usize> {
    let mut p = Parser {
        src: source,
        pos: 0,
    };
    while p.pos < source.len() {
        if p.skip_trivia().is_err() {
            return None;
        }
        let rest = &source[p.pos..];
        for prefix in ["module.exports", "export default"] {
            if let Some(after) = rest.strip_prefix(prefix) {
                let mut q = Parser {
                    src: source,
                    pos: source.len() - after.len(),
                };
                if prefix == "export default" {
                    return Some(q.pos);
                }
                q.skip_trivia().ok()?;
                if q.peek() == Some('=') && !q.src[q.pos..].starts_with("==") {
                    return Some(q.pos + 1);
                }
            }
        }
        match p.peek() {
            Some(c @ ('"' | '\'' | '`')) => {
                if p.string(c).is_err() {
                    return None;
                }
            }
            Some(c) => p.pos += c.len_utf8(),
            None => break,
        }
    }
    None
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn error(&self, message: &str) -> NotLiteral {
        let before = &self.src[..self.pos];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        NotLiteral {
            message: message.to_string(),
            line,
            column,
        }
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), NotLiteral> {
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => return Err(self.error("unterminated comment")),
                }
            } else {
                return Ok(());
            }
        }
    }

    fn value(&mut self) -> Result<Value, NotLiteral> {
        self.skip_trivia()?;
        match self.peek() {
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some(q @ ('"' | '\'' | '`')) => self.string(q).map(Value::String),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            Some(c) if is_ident_start(c) => {
                let start = self.pos;
                let word = self.ident();
                match word {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" | "undefined" => Ok(Value::Null),
                    _ => {
                        self.pos = start;
                        Err(self.error(&format!("`{word}` is not a literal value")))
                    }
                }
            }
            Some(c) => Err(self.error(&format!("unexpected `{c}`"))),
            None => Err(self.error("unexpected end of file")),
        }
    }

    fn ident(&mut self) -> &'a str {
        let rest = &self.src[self.pos..];
        let len = rest
            .find(|c: char| !(is_ident_start(c) || c.is_ascii_digit()))
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn object(&mut self) -> Result<Value, NotLiteral> {
        self.pos += 1; // `{`
        let mut map = Map::new();
        loop {
            self.skip_trivia()?;
            let key = match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                Some(q @ ('"' | '\'')) => self.string(q)?,
                Some(c) if is_ident_start(c) => self.ident().to_string(),
                Some(c) if c.is_ascii_digit() => match self.number()? {
                    Value::Number(n) => n.to_string(),
                    _ => unreachable!("number() returns numbers"),
                },
                Some('.') if self.src[self.pos..].starts_with("...") => {
                    return Err(self.error("a spread (`...`) is not a literal value"));
                }
                Some(c) => return Err(self.error(&format!("unexpected `{c}` (expected a key)"))),
                None => return Err(self.error("unexpected end of file in an object")),
            };
            self.skip_trivia()?;
            match self.peek() {
                Some(':') => self.pos += 1,
                Some('(') => return Err(self.error(&format!("method `{key}()` is code"))),
                Some(',' | '}') => {
                    return Err(
                        self.error(&format!("shorthand property `{key}` refers to a variable"))
                    );
                }
                _ => return Err(self.error(&format!("expected `:` after key `{key}`"))),
            }
            let value = self.value()?;
            map.insert(key, value);
            self.after_item('}')?;
        }
    }

    fn array(&mut self) -> Result<Value, NotLiteral> {
        self.pos += 1; // `[`
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some(']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.after_item(']')?;
        }
    }

    /// After an item: `,` (consumed) or the closing bracket (left for the loop).
    fn after_item(&mut self, close: char) -> Result<(), NotLiteral> {
        self.skip_trivia()?;
        match self.peek() {
            Some(',') => {
                self.pos += 1;
                Ok(())
            }
            Some(c) if c == close => Ok(()),
            Some('.' | '(' | '[' | '+' | '?' | '|' | '&') => {
                Err(self.error("an expression is not a literal value"))
            }
            Some(c) => Err(self.error(&format!("unexpected `{c}` (expected `,` or `{close}`)"))),
            None => Err(self.error("unexpected end of file")),
        }
    }

    fn string(&mut self, quote: char) -> Result<String, NotLiteral> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                self.pos = start;
                return Err(self.error("unterminated string"));
            };
            self.pos += c.len_utf8();
            match c {
                c if c == quote => return Ok(out),
                '\n' if quote != '`' => {
                    self.pos = start;
                    return Err(self.error("unterminated string"));
                }
                '$' if quote == '`' && self.peek() == Some('{') => {
                    self.pos -= 1;
                    return Err(self.error("a template with `${}` is not a literal value"));
                }
                '\\' => self.escape(&mut out)?,
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), NotLiteral> {
        let Some(c) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.pos += c.len_utf8();
        match c {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '0' => out.push('\0'),
            '\n' => {} // line continuation
            'x' => {
                let code = self.hex(2)?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            'u' => {
                let code = if self.peek() == Some('{') {
                    self.pos += 1;
                    let end = self.src[self.pos..]
                        .find('}')
                        .ok_or_else(|| self.error("bad \\u{} escape"))?;
                    let digits = &self.src[self.pos..self.pos + end];
                    let code = u32::from_str_radix(digits, 16)
                        .map_err(|_| self.error("bad \\u{} escape"))?;
                    self.pos += end + 1;
                    code
                } else {
                    let hi = self.hex(4)?;
                    if (0xD800..0xDC00).contains(&hi) && self.src[self.pos..].starts_with("\\u") {
                        self.pos += 2;
                        let lo = self.hex(4)?;
                        0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                    } else {
                        hi
                    }
                };
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            c => out.push(c),
        }
        Ok(())
    }

    fn hex(&mut self, n: usize) -> Result<u32, NotLiteral> {
        let digits = self
            .src
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.error("bad escape"))?;
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad escape"))?;
        self.pos += n;
        Ok(code)
    }

    fn number(&mut self) -> Result<Value, NotLiteral> {
        let start = self.pos;
        let rest = &self.src[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_')))
            .unwrap_or(rest.len());
        let text: String = rest[..len].chars().filter(|&c| c != '_').collect();
        self.pos += len;
        let (sign, digits) = match text.strip_prefix('-') {
            Some(d) => (-1i64, d),
            None => (1, text.strip_prefix('+').unwrap_or(&text)),
        };
        let hex = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"));
        let parsed = match hex {
            Some(h) => i64::from_str_radix(h, 16)
                .ok()
                .map(|n| Value::from(sign * n)),
            None => match digits.parse::<i64>() {
                Ok(n) => Some(Value::from(sign * n)),
                Err(_) => digits
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(|f| Number::from_f64(sign as f64 * f))
                    .map(Value::Number),
            },
        };
        parsed.ok_or_else(|| {
            self.pos = start;
            self.error(&format!("`{text}` is not a number literal"))
        })
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json5ish_literal_is_read() {
        let src = r#"
// PM2 config
'use strict';
/* block
   comment */
module.exports = {
  apps: [{
    name: 'api',            // trailing comment
    "script": "app.py",
    args: ['--port', "8000",],
    instances: 2,
    max_memory_restart: `300M`,
    restart_delay: 1.5e3,
    offset: -3,
    hex: 0x10,
    env: { DEBUG: 'it\'s "on"', EMPTY: '', U: '\u00e9\x41' },
    watch: false,
    nothing: null,
  },],
};
"#;
        let v = exports_literal(src).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            v,
            json!({"apps": [{
                "name": "api", "script": "app.py", "args": ["--port", "8000"], "instances": 2,
                "max_memory_restart": "300M", "restart_delay": 1500.0, "offset": -3, "hex": 16,
                "env": {"DEBUG": "it's \"on\"", "EMPTY": "", "U": "éA"}, "watch": false,
                "nothing": null
            }]})
        );
    }

    #[test]
    fn export_default_and_a_comment_mentioning_module_exports() {
        let src = "// module.exports = nope\nexport default { apps: [] }\n";
        assert_eq!(exports_literal(src).unwrap(), json!({"apps": []}));
    }

    #[test]
    fn code_is_refused_with_its_position() {
        for (src, what, line) in [
            (
                "const p = require('path');\nmodule.exports = {\n  apps: [{ cwd: p.join(__dirname, 'x') }]\n}",
                "`p` is not a literal value",
                3,
            ),
            (
                "module.exports = { apps: [{ env: { PORT: process.env.PORT } }] }",
                "`process` is not a literal value",
                1,
            ),
            ("module.exports = { apps }", "shorthand property `apps`", 1),
            (
                "module.exports = { a: `x${y}` }",
                "a template with `${}`",
                1,
            ),
            ("module.exports = { a: 1 + 2 }", "an expression", 1),
            ("module.exports = {};\nfoo()", "code after", 2),
            ("const apps = [];", "no `module.exports", 1),
            ("module.exports = { a: 'x }", "unterminated string", 1),
        ] {
            let e = exports_literal(src).expect_err(src);
            assert!(e.message.contains(what), "{src}: {e:?}");
            assert_eq!(e.line, line, "{src}: {e:?}");
        }
    }
}
