//! PM2 ecosystem files: JSON, or the object literal of `ecosystem.config.js` (read by `js`).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{AppOut, Builder, ImportError, cpu_count, lit, millis};
use crate::config::units;

pub fn convert(name: &str, text: &str, dir: &Path, b: &mut Builder) -> Result<(), ImportError> {
    let root = match evaluate(name, dir) {
        Some(Ok(v)) => {
            b.notes.push(format!(
                "`{name}` was evaluated with node, as PM2 loads it (`require`, then the exported object as JSON)"
            ));
            v
        }
        Some(Err(why)) => {
            let v = parse(name, text)?;
            b.notes.push(format!(
                "`{name}`: node could not evaluate it ({why}); read as a literal object instead"
            ));
            v
        }
        None => parse(name, text)?,
    };
    let apps: Vec<&Value> = match &root {
        Value::Object(top) => {
            for key in top.keys().filter(|k| *k != "apps") {
                let why = if key == "deploy" {
                    "PM2 deployment has no pypm equivalent (deploy the files, then run `pypm reload` or bump `revision`)"
                } else {
                    "has no pypm equivalent"
                };
                b.notes.push(format!("top-level `{key}`: {why}"));
            }
            match top.get("apps") {
                Some(Value::Array(list)) => list.iter().collect(),
                Some(one @ Value::Object(_)) => vec![one],
                Some(_) => {
                    return Err(ImportError(format!(
                        "`apps` in `{name}` is not a list of apps"
                    )));
                }
                None if top.contains_key("script") => vec![&root],
                None => {
                    return Err(ImportError(format!(
                        "no `apps` in `{name}`\n\na PM2 ecosystem file looks like {{ \"apps\": [{{ \"name\": \"api\", \"script\": \"app.py\" }}] }}"
                    )));
                }
            }
        }
        Value::Array(list) => list.iter().collect(),
        _ => {
            return Err(ImportError(format!(
                "`{name}` is not a PM2 ecosystem file (expected an object with `apps`)"
            )));
        }
    };
    for (i, app) in apps.into_iter().enumerate() {
        match app {
            Value::Object(obj) => convert_app(i, obj, b),
            _ => b.notes.push(format!("apps[{i}]: not an object; skipped")),
        }
    }
    Ok(())
}

/// How long node may take to evaluate an ecosystem file.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// An `ecosystem.config.js` evaluated by node the way PM2 loads it: `require` of the file in its
/// directory, then `JSON.stringify` of what it exports. `None` when that does not apply (a JSON
/// file, no `node` on PATH, or `PYPM_IMPORT_NODE=0`); `Some(Err)` when node failed.
fn evaluate(name: &str, dir: &Path) -> Option<Result<Value, String>> {
    let lower = name.to_ascii_lowercase();
    if !(lower.ends_with(".js") || lower.ends_with(".cjs"))
        || std::env::var("PYPM_IMPORT_NODE").is_ok_and(|v| v == "0")
    {
        return None;
    }
    let file = dir.join(Path::new(name).file_name()?);
    let mut child = std::process::Command::new("node")
        .arg("-e")
        .arg("process.stdout.write(JSON.stringify(require(process.argv[1])))")
        .arg(&file)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?; // no node: the literal reader
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(Err(format!("no answer within {}s", NODE_TIMEOUT.as_secs())));
            }
            Err(e) => return Some(Err(e.to_string())),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let first = err
            .lines()
            .find(|l| l.contains("Error"))
            .unwrap_or("it exited with an error")
            .trim()
            .to_string();
        return Some(Err(first));
    }
    Some(serde_json::from_slice(&out).map_err(|e| format!("its export is not JSON: {e}")))
}

fn parse(name: &str, text: &str) -> Result<Value, ImportError> {
    let trimmed = text.trim_start();
    let looks_json =
        name.to_ascii_lowercase().ends_with(".json") || trimmed.starts_with(['{', '[']);
    if looks_json {
        // PM2 evaluates a .json ecosystem file as a JavaScript expression, so comments and
        // trailing commas are fine there: the literal reader (JSON5) reads what JSON does not.
        return serde_json::from_str(text).or_else(|e| {
            super::js::exports_literal(&format!("module.exports = {text}")).map_err(|_| {
                ImportError(format!(
                    "`{name}` is not valid JSON: {e}\n\n{}",
                    super::ACCEPTED
                ))
            })
        });
    }
    super::js::exports_literal(text).map_err(|e| {
        // `require` needs `./` for a path relative to the current directory.
        let base = if name.starts_with(['/', '.']) {
            name.to_string()
        } else {
            format!("./{name}")
        };
        ImportError(format!(
            "`{name}` is not a plain object literal ({} at line {}, column {}); convert it with node first\n\n\
             pypm reads ecosystem.config.js without running JavaScript. Let node evaluate it, then import the JSON:\n\n  \
             node -e 'console.log(JSON.stringify(require(\"{base}\")))' > eco.json\n  \
             pypm import eco.json",
            e.message, e.line, e.column
        ))
    })
}

/// A PM2 value that is a string, a number or a boolean, as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A PM2 list of words: a string (split like a shell) or an array.
fn words(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => shell_words::split(s).ok(),
        Value::Array(a) => a.iter().map(scalar).collect(),
        _ => None,
    }
}

/// A PM2 duration: milliseconds as a number, or a string pypm reads (`"10s"`; a bare number is ms).
fn duration(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_f64().filter(|f| *f >= 0.0).map(|f| millis(f as u64)),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(ms) = s.parse::<u64>() {
                Some(millis(ms))
            } else {
                units::parse_duration(s).ok().map(|_| s.to_string())
            }
        }
        _ => None,
    }
}

fn convert_app(index: usize, obj: &serde_json::Map<String, Value>, b: &mut Builder) {
    let script = obj.get("script").and_then(Value::as_str);
    let raw_name = match (obj.get("name").and_then(scalar), script) {
        (Some(n), _) => n,
        // PM2 names an app after its script's file name.
        (None, Some(s)) => std::path::Path::new(s).file_stem().map_or_else(
            || format!("app{index}"),
            |n| n.to_string_lossy().into_owned(),
        ),
        (None, None) => format!("app{index}"),
    };
    let Some(script) = script else {
        b.notes.push(format!(
            "apps[{index}] (`{raw_name}`): no `script`; skipped"
        ));
        return;
    };
    let mut app = b.app(&raw_name);
    let name = app.name.clone();
    let mut handled: Vec<&str> = vec!["name", "script"];
    let mut notes: Vec<String> = Vec::new();

    // What runs.
    let interpreter = obj
        .get("interpreter")
        .or_else(|| obj.get("exec_interpreter"))
        .and_then(Value::as_str)
        // `interpreter: ""` is PM2's "not set".
        .filter(|i| !i.trim().is_empty());
    let interp_args = obj
        .get("interpreter_args")
        .or_else(|| obj.get("node_args"))
        .and_then(words)
        .unwrap_or_default();
    let args = match obj.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => words(v).unwrap_or_else(|| {
            notes.push("`args` is neither a string nor a list of strings; not imported".into());
            Vec::new()
        }),
    };
    handled.extend([
        "interpreter",
        "exec_interpreter",
        "interpreter_args",
        "node_args",
        "args",
    ]);
    program(
        &mut app,
        script,
        interpreter,
        &interp_args,
        &args,
        &mut notes,
    );

    // PM2 stops an app with SIGINT (`kill_signal`), then SIGKILL after `kill_timeout` (1600 ms).
    let signal = obj
        .get("kill_signal")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with("SIG") {
                s
            } else {
                format!("SIG{s}")
            }
        });
    match signal {
        Some(sig) if crate::process::parse_signal(&sig).is_ok() => app.set("stop_signal", sig),
        Some(sig) => {
            notes.push(format!(
                "`kill_signal = {sig}` is not a signal pypm knows; SIGINT used"
            ));
            app.set("stop_signal", "SIGINT");
        }
        None => app.set("stop_signal", "SIGINT"),
    }
    if obj.get("kill_timeout").is_none() {
        app.set("stop_timeout", "1600ms");
    }
    handled.push("kill_signal");
    if obj.get("env").is_none() {
        // The only environment a file gives may be an `env_<name>` block: use it rather than none.
        let blocks: Vec<&String> = obj.keys().filter(|k| k.starts_with("env_")).collect();
        let chosen = blocks
            .iter()
            .find(|k| k.as_str() == "env_production")
            .or_else(|| blocks.first())
            .copied();
        if let Some(key) = chosen
            && let Some(Value::Object(vars)) = obj.get(key.as_str())
        {
            let mut env = toml::Table::new();
            for (k, v) in vars {
                if let Some(s) = scalar(v) {
                    env.insert(k.clone(), toml::Value::String(lit(&s)));
                }
            }
            if !env.is_empty() {
                app.set("env", env);
            }
            notes.push(format!(
                "no `env`: `{key}` imported as `env` too (PM2 applies it only with `--env {}`; here it is also `[profiles.{}]`)",
                &key["env_".len()..],
                &key["env_".len()..]
            ));
        }
    }
    let mut profile_envs: Vec<(String, toml::Table)> = Vec::new();
    let mut log_keys: Vec<&str> = Vec::new();

    if let Some(cwd) = obj.get("cwd").and_then(Value::as_str) {
        app.set("cwd", lit(cwd));
    }
    handled.push("cwd");

    for (key, value) in obj {
        let key = key.as_str();
        if handled.contains(&key) {
            continue;
        }
        match (key, value) {
            ("env", Value::Object(vars)) => {
                let mut env = toml::Table::new();
                for (k, v) in vars {
                    match scalar(v) {
                        Some(s) => {
                            env.insert(k.clone(), toml::Value::String(lit(&s)));
                        }
                        None => notes.push(format!("env `{k}` is not a string; not imported")),
                    }
                }
                if !env.is_empty() {
                    app.set("env", env);
                }
            }
            (k, Value::Object(vars)) if k.starts_with("env_") => {
                // PM2's `--env NAME` is pypm's `--profile NAME`.
                let mut env = toml::Table::new();
                for (ek, ev) in vars {
                    match scalar(ev) {
                        Some(s) => {
                            env.insert(ek.clone(), toml::Value::String(lit(&s)));
                        }
                        None => notes.push(format!("`{k}.{ek}` is not a string; not imported")),
                    }
                }
                if !env.is_empty() {
                    profile_envs.push((k["env_".len()..].to_string(), env));
                }
            }
            (k, _) if k.starts_with("env_") => {
                notes.push(format!("`{k}` is not an object; not imported"))
            }
            ("instances", v) => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) if s == "max" => Some(0),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if n >= 1 => {
                        if n > 1 {
                            app.set("instances", n.min(1024));
                        }
                    }
                    Some(n) => {
                        let cpus = i64::from(cpu_count());
                        let used = (cpus + n).max(1);
                        if used > 1 {
                            app.set("instances", used);
                        }
                        let what = if n == 0 {
                            "one per CPU".to_string()
                        } else {
                            format!("the CPU count minus {}", -n)
                        };
                        notes.push(format!(
                            "`instances = {v}` ({what}) became {used}, from this machine's {cpus} CPUs; pypm takes a fixed number"
                        ));
                    }
                    None => notes.push(format!("`instances = {v}` is not a number; not imported")),
                }
            }
            ("exec_mode", Value::String(m)) if m.contains("cluster") => notes.push(
                "`exec_mode = \"cluster\"`: pypm runs `instances` separate processes; to share one port among them, use `listen`, which passes one socket to every instance".to_string(),
            ),
            ("exec_mode", _) => {}
            ("autorestart", Value::Bool(false)) => app.set("restart", "never"),
            ("autorestart", Value::Bool(true)) => {}
            ("autostart", Value::Bool(false)) => app.set("enabled", false),
            ("autostart", Value::Bool(true)) => {}
            ("max_restarts", Value::Number(n)) if n.as_u64().is_some() => {
                app.set("max_restarts", n.as_i64().unwrap_or(0).min(1_000_000));
            }
            (
                "min_uptime" | "restart_delay" | "exp_backoff_restart_delay" | "kill_timeout",
                v,
            ) => match duration(v) {
                Some(d) => {
                    let to = match key {
                        "min_uptime" => "min_uptime",
                        "kill_timeout" => "stop_timeout",
                        _ => "restart_delay",
                    };
                    // pypm always backs off exponentially; `restart_delay` is the first step.
                    if key != "exp_backoff_restart_delay" || app.get("restart_delay").is_none() {
                        app.set(to, d);
                    }
                }
                None => notes.push(format!("`{key} = {v}` is not a duration; not imported")),
            },
            ("max_memory_restart", v) => {
                let text = scalar(v).unwrap_or_default().trim().to_ascii_uppercase();
                let text = text.strip_suffix('B').unwrap_or(&text).to_string();
                match units::parse_size(&text) {
                    Ok(_) => {
                        app.set("memory_max", text);
                        notes.push("`max_memory_restart` became `memory_max`: PM2 restarts the app gracefully (stop signal) when it is over; pypm's limit is the kernel's where it has a cgroup (an OOM kill, reported as `memory_limit`), else a sampled restart: see `pypm inspect`".into());
                    }
                    Err(_) => notes.push(format!("`max_memory_restart = {v}` is not a size; not imported")),
                }
            }
            ("watch", Value::Bool(false)) => {}
            ("watch", Value::Bool(true)) => notes.push(
                "`watch = true` (everything under cwd) not imported: list what to watch, e.g. `watch = [\"**/*.py\"]` (watching everything would include the logs)".to_string(),
            ),
            ("watch", v) => match words(v) {
                Some(paths) => {
                    let globs: Vec<String> = paths.iter().map(|p| watch_glob(p)).collect();
                    if globs != paths {
                        notes.push("`watch` paths became globs (a directory `d` → `d/**`)".to_string());
                    }
                    app.set("watch", globs.iter().map(|g| lit(g)).collect::<Vec<_>>());
                }
                None => notes.push(format!("`watch = {v}` not imported")),
            },
            ("stop_exit_codes", v) => {
                let codes: Option<Vec<i64>> = match v {
                    Value::Array(a) => a.iter().map(Value::as_i64).collect(),
                    Value::Number(n) => n.as_i64().map(|c| vec![c]),
                    _ => None,
                };
                match codes.filter(|c| c.iter().all(|n| (0..=255).contains(n))) {
                    Some(codes) => {
                        if app.get("restart").is_none() {
                            app.set("restart", "on-failure");
                        }
                        app.set("success_exit_codes", codes);
                    }
                    None => notes.push(format!("`stop_exit_codes = {v}` not imported")),
                }
            }
            ("user" | "uid", v) => match scalar(v) {
                Some(u) => app.set("user", lit(&u)),
                None => notes.push(format!("`{key}` not imported")),
            },
            ("time", Value::Bool(t)) => {
                if *t {
                    app.set("log_timestamps", true);
                }
            }
            ("log_date_format", _) => {
                app.set("log_timestamps", true);
                notes.push(format!(
                    "`log_date_format = {v}`: pypm timestamps are RFC 3339, set with `log_timestamps = true`",
                    v = value
                ));
            }
            (
                "out_file" | "error_file" | "log_file" | "output" | "error" | "log" | "pid_file"
                | "merge_logs" | "combine_logs" | "log_type" | "disable_logs",
                _,
            ) => log_keys.push(key),
            // PM2's `cron_restart` is pypm's `restart_schedule` (a rolling restart at those times).
            ("cron_restart", v) => match scalar(v) {
                Some(c) if crate::inputs::schedule::Schedule::parse(&c).is_ok() => {
                    app.set("restart_schedule", lit(&c))
                }
                _ => notes.push(format!(
                    "`cron_restart = {v}` is not a cron expression pypm reads; not imported"
                )),
            },
            ("wait_ready" | "listen_timeout", v) => notes.push(format!(
                "`{key} = {v}` has no equivalent: declare a readiness probe in [apps.{name}.ready] (http, tcp, log or notify)"
            )),
            ("ignore_watch" | "watch_delay" | "watch_options", _) => notes.push(format!(
                "`{key}` not imported: pypm restarts on changes to the `watch` globs (debounced)"
            )),
            (k, v) => notes.push(format!("`{k} = {v}` has no pypm equivalent")),
        }
    }
    if !log_keys.is_empty() {
        let list: Vec<String> = log_keys.iter().map(|k| format!("`{k}`")).collect();
        notes.push(format!(
            "{} not imported: logs go to `log_dir` as {name}.out.log and {name}.err.log",
            list.join(", ")
        ));
    }
    let instances = app
        .get("instances")
        .and_then(toml::Value::as_integer)
        .unwrap_or(1);
    if instances > 1 || obj.contains_key("instance_var") {
        let var = obj
            .get("instance_var")
            .and_then(Value::as_str)
            .unwrap_or("NODE_APP_INSTANCE");
        notes.push(format!(
            "PM2 sets `{var}` (0, 1, …) in each instance; pypm sets `PYPM_INSTANCE`: read that instead"
        ));
    }
    for n in notes {
        b.note(&name, n);
    }
    for (profile, env) in profile_envs {
        let profile = crate::commands::init::starter::sanitize_name(&profile);
        b.profiles.push((
            profile,
            app.name.clone(),
            vec![("env".into(), toml::Value::Table(env))],
        ));
    }
    b.apps.push(app);
}

/// A PM2 watch path as a pypm glob: globs stay, a directory (no extension) `d` becomes `d/**`.
fn watch_glob(path: &str) -> String {
    let path = path.trim_end_matches('/');
    if path.contains(['*', '?', '[']) {
        return path.to_string();
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    if path.is_empty() || path == "." {
        "**".to_string()
    } else if last.contains('.') && !last.starts_with('.') {
        path.to_string()
    } else {
        format!("{path}/**")
    }
}

/// `script` with its interpreter: a `script` key where pypm picks the same interpreter, else an
/// explicit `command`.
fn program(
    app: &mut AppOut,
    script: &str,
    interpreter: Option<&str>,
    interp_args: &[String],
    args: &[String],
    notes: &mut Vec<String>,
) {
    let ext = std::path::Path::new(script)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    // PM2 picks the interpreter from the extension when none is given.
    let by_ext = match ext {
        "py" => Some("python"),
        "js" | "cjs" | "mjs" => Some("node"),
        "sh" => Some("bash"),
        "rb" => Some("ruby"),
        "php" => Some("php"),
        "pl" => Some("perl"),
        _ => None,
    };
    let lits = |v: &[String]| v.iter().map(|s| lit(s)).collect::<Vec<_>>();
    // A bare program name (`npm`, `uvicorn`, `python3`): PM2 looks it up on PATH (`which`) when
    // no such file is in cwd; run it (with its own shebang). With an interpreter given as a path
    // (a venv's python), the name is taken as that interpreter's script in cwd.
    if by_ext.is_none() && !script.contains('/') && !interpreter.is_some_and(|i| i.contains('/')) {
        let mut argv = vec![lit(script)];
        argv.extend(lits(args));
        app.set("command", argv);
        if let Some(i) = interpreter.filter(|i| *i != "none") {
            notes.push(format!(
                "`{script}` is a program on PATH (PM2 finds it with `which`): pypm runs it directly, not through `{i}`"
            ));
        }
        if !interp_args.is_empty() {
            notes.push(format!(
                "`node_args`/`interpreter_args` ({}) not applied to `{script}`: for node, put them in `env` as NODE_OPTIONS",
                interp_args.join(" ")
            ));
        }
        return;
    }
    let runner: Option<String> = match interpreter {
        None => by_ext.map(str::to_string),
        // A path (a venv's python, say) is kept: pypm runs that file.
        Some(i) if i.contains('/') => Some(i.to_string()),
        Some(i) => Some(match i {
            "python" | "python3" => "python".to_string(),
            "node" | "nodejs" => "node".to_string(),
            b @ ("bash" | "sh" | "none") => b.to_string(),
            _ => i.to_string(),
        }),
    };
    // What pypm's `interpreter` accepts (SPEC §1); anything else goes first in `command`.
    let pypm_knows = runner.as_deref().is_none_or(|r| {
        matches!(r, "python" | "node" | "bash" | "sh" | "none")
            || r.starts_with("python3.")
            || r.contains('/')
    });
    if interp_args.is_empty() && pypm_knows {
        app.set("script", lit(script));
        if let Some(r) = runner {
            // pypm infers python / node / bash from .py / .js / .sh.
            let inferred = matches!(
                (r.as_str(), ext),
                ("python", "py") | ("node", "js") | ("bash", "sh")
            );
            if !inferred {
                app.set("interpreter", lit(&r));
            }
        }
        if !args.is_empty() {
            app.set("args", lits(args));
        }
        return;
    }
    let mut argv = Vec::new();
    if let Some(r) = runner.filter(|r| r != "none") {
        argv.push(lit(&r));
    }
    argv.extend(lits(interp_args));
    argv.push(lit(script));
    argv.extend(lits(args));
    app.set("command", argv);
}
