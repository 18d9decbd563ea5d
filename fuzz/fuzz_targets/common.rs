/// Imports `text` as a file named `name`. An import that succeeds must render to TOML whose apps
/// use only keys the reader knows, each with exactly one of `command`/`script`/`module`. (Paths
/// are not judged: a fuzzed `cwd` names no directory of this machine.)
pub fn import_oracle(name: &str, text: &str) {
    let dir = std::env::temp_dir().join("pypm-fuzz-import");
    let _ = std::fs::create_dir_all(&dir);
    // The literal reader only: never run node on fuzz input.
    if std::env::var_os("PYPM_IMPORT_NODE").is_none() {
        // SAFETY: libFuzzer runs the target on one thread.
        unsafe { std::env::set_var("PYPM_IMPORT_NODE", "0") };
    }
    let Ok(imported) = pypm::commands::import::convert(name, text, &dir) else {
        return;
    };
    let out = pypm::commands::import::render(&imported, name);
    let doc = match out.parse::<toml::Table>() {
        Ok(d) => d,
        Err(e) => panic!("the import is not TOML: {e}\n{out}"),
    };
    let known: Vec<&str> = pypm::config::keys::APP_KEYS.iter().map(|k| k.name).collect();
    let apps = doc.get("apps").and_then(|a| a.as_table()).cloned().unwrap_or_default();
    for (app, t) in &apps {
        let Some(t) = t.as_table() else {
            panic!("app `{app}` is not a table\n{out}");
        };
        for k in t.keys() {
            assert!(known.contains(&k.as_str()), "app `{app}`: unknown key `{k}`\n{out}");
        }
        let programs = ["command", "script", "module"]
            .iter()
            .filter(|p| t.contains_key(**p))
            .count();
        assert_eq!(programs, 1, "app `{app}`: one of command/script/module\n{out}");
    }
}
