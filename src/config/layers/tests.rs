//! Table tests of the effective file: merge rules of includes, profiles and `extends`, and
//! errors naming the file, line and column they come from.

use super::*;

/// (what, files as (name, text), active profiles, expected merged table or first error)
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

fn merged(files: &[(&str, &str)], profiles: &[&str]) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
    }
    let main = dir.path().join(files[0].0);
    let (sources, order, mut diags) = gather(files[0].1, &main, files[0].0);
    let root = merge(&sources, &order, &mut diags);
    let out = match root {
        Some(mut r) => {
            let active: Vec<String> = profiles.iter().map(|s| s.to_string()).collect();
            apply_profiles(&mut r, &active, &mut diags);
            apply_extends(&mut r, &mut diags);
            to_toml(&r)
        }
        None => String::new(),
    };
    let msgs = diags
        .iter()
        .map(|d| {
            let at = d
                .span
                .as_ref()
                .map(|s| sources.locate(s.start))
                .unwrap_or_default();
            format!(
                "{at}: {}{}",
                d.message,
                d.help
                    .as_ref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    (out, msgs)
}

/// The merged table as compact TOML-ish text, for the assertions.
fn to_toml(t: &DeTable<'_>) -> String {
    fn val(v: &DeValue<'_>) -> String {
        match v {
            DeValue::String(s) => format!("{:?}", s.as_ref()),
            DeValue::Integer(i) => i.as_str().to_string(),
            DeValue::Float(f) => f.as_str().to_string(),
            DeValue::Boolean(b) => b.to_string(),
            DeValue::Datetime(d) => d.to_string(),
            DeValue::Array(a) => format!(
                "[{}]",
                a.iter()
                    .map(|x| val(x.get_ref()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            DeValue::Table(t) => format!(
                "{{{}}}",
                t.iter()
                    .map(|(k, v)| format!("{} = {}", k.get_ref().as_ref(), val(v.get_ref())))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    val(&DeValue::Table(t.clone()))
}

/// Each case merges without errors into the expected table.
fn assert_merges(cases: &[Case]) {
    for (what, files, profiles, want) in cases {
        let (got, errs) = merged(files, profiles);
        assert!(errs.is_empty(), "{what}: {errs:?}");
        assert_eq!(&got, want, "{what}");
    }
}

#[test]
fn includes_merge_into_the_including_file() {
    assert_merges(&[
        (
            "an include adds apps",
            &[
                (
                    "pypm.toml",
                    "include = [\"more.toml\"]\n[apps.a]\ncommand = \"x\"\n",
                ),
                ("more.toml", "[apps.b]\ncommand = \"y\"\n"),
            ],
            &[],
            "{apps = {b = {command = \"y\"}, a = {command = \"x\"}}, include = [\"more.toml\"]}",
        ),
        (
            "[pypm] merges key by key, the including file last",
            &[
                (
                    "pypm.toml",
                    "include = [\"base.toml\"]\n[pypm]\nlog_dir = \"l\"\n",
                ),
                (
                    "base.toml",
                    "[pypm]\nstate_dir = \"s\"\nlog_dir = \"old\"\n",
                ),
            ],
            &[],
            "{pypm = {state_dir = \"s\", log_dir = \"l\"}, include = [\"base.toml\"]}",
        ),
        (
            "globs are sorted",
            &[
                ("pypm.toml", "include = [\"svc/*.toml\"]\n"),
                ("svc/b.toml", "[apps.b]\ncommand = \"b\"\n"),
                ("svc/a.toml", "[apps.a]\ncommand = \"a\"\n"),
            ],
            &[],
            "{apps = {a = {command = \"a\"}, b = {command = \"b\"}}, include = [\"svc/*.toml\"]}",
        ),
    ]);
}

#[test]
fn profiles_merge_tables_and_replace_values() {
    assert_merges(&[
        (
            "a profile: tables merge, arrays and scalars replace, env merges",
            &[(
                "pypm.toml",
                "[apps.api]\ncommand = \"x\"\ninstances = 1\nwatch = [\"*.py\"]\nenv = { A = \"1\", B = \"2\" }\n[profiles.prod.apps.api]\ninstances = 4\nwatch = []\nenv = { B = \"3\" }\n",
            )],
            &["prod"],
            "{apps = {api = {command = \"x\", env = {A = \"1\", B = \"3\"}, instances = 4, watch = []}}}",
        ),
        (
            "profiles apply in order",
            &[(
                "pypm.toml",
                "[apps.api]\ncommand = \"x\"\n[profiles.a.apps.api]\ninstances = 2\n[profiles.b.apps.api]\ninstances = 3\n",
            )],
            &["b", "a"],
            "{apps = {api = {command = \"x\", instances = 2}}}",
        ),
        (
            "enabled = false in a profile removes the app",
            &[(
                "pypm.toml",
                "[apps.api]\ncommand = \"x\"\n[apps.dev]\ncommand = \"y\"\n[profiles.prod.apps.dev]\nenabled = false\n",
            )],
            &["prod"],
            "{apps = {api = {command = \"x\"}}}",
        ),
        (
            "a profile may add an app and [pypm] keys",
            &[(
                "pypm.toml",
                "[apps.api]\ncommand = \"x\"\n[profiles.ci.pypm]\nlog_dir = \"ci-logs\"\n[profiles.ci.apps.tests]\ncommand = \"pytest\"\nkind = \"task\"\n",
            )],
            &["ci"],
            "{apps = {api = {command = \"x\"}, tests = {command = \"pytest\", kind = \"task\"}}, pypm = {log_dir = \"ci-logs\"}}",
        ),
        (
            "an inactive profile changes nothing",
            &[(
                "pypm.toml",
                "[apps.api]\ncommand = \"x\"\n[profiles.prod.apps.api]\ninstances = 4\n",
            )],
            &[],
            "{apps = {api = {command = \"x\"}}}",
        ),
    ]);
}

#[test]
fn extends_lays_an_app_over_its_parent() {
    assert_merges(&[(
        "extends: chained, own keys win, tables merge",
        &[(
            "pypm.toml",
            "[apps.base]\ncommand = \"w\"\nenv = { A = \"1\" }\n[apps.mid]\nextends = \"base\"\nargs_like = 1\n[apps.leaf]\nextends = \"mid\"\ncommand = \"v\"\nenv = { B = \"2\" }\n",
        )],
        &[],
        "{apps = {base = {command = \"w\", env = {A = \"1\"}}, mid = {command = \"w\", env = {A = \"1\"}, args_like = 1}, leaf = {env = {A = \"1\", B = \"2\"}, args_like = 1, command = \"v\"}}}",
    )]);
}

#[test]
fn errors_name_the_file_line_and_column_they_come_from() {
    let cases: &[Case] = &[
        (
            "an app defined twice",
            &[
                (
                    "pypm.toml",
                    "include = [\"a.toml\"]\n\n[apps.api]\ncommand = \"x\"\n",
                ),
                ("a.toml", "[apps.api]\ncommand = \"y\"\n"),
            ],
            &[],
            "pypm.toml:3:7: app `api` is defined twice (it is also defined at a.toml:1:7; to change it per environment, use `[profiles.NAME.apps.api]`)",
        ),
        (
            "a cycle",
            &[
                ("pypm.toml", "include = [\"a.toml\"]\n"),
                ("a.toml", "include = [\"pypm.toml\"]\n"),
            ],
            &[],
            "a.toml:1:12: include cycle: pypm.toml → a.toml → pypm.toml",
        ),
        (
            "a missing file",
            &[("pypm.toml", "include = [\"nope.toml\"]\n")],
            &[],
            "pypm.toml:1:12: cannot read included file `nope.toml`: No such file or directory (os error 2)",
        ),
        (
            "a syntax error in an included file",
            &[
                ("pypm.toml", "include = [\"a.toml\"]\n"),
                ("a.toml", "\n[apps.x\n"),
            ],
            &[],
            "a.toml:2:8: invalid TOML: unclosed table, expected `]`",
        ),
        (
            "an unknown profile",
            &[(
                "pypm.toml",
                "[apps.api]\ncommand = \"x\"\n[profiles.production.apps.api]\ninstances = 2\n",
            )],
            &["prodution"],
            "pypm.toml:3:2: no profile `prodution`; the file defines `production` (did you mean `production`?)",
        ),
        (
            "a device is not a file",
            &[("pypm.toml", "include = [\"/dev/zero\"]\n")],
            &[],
            "pypm.toml:1:12: included `/dev/zero` is not a regular file",
        ),
        (
            "an extends cycle",
            &[(
                "pypm.toml",
                "[apps.a]\nextends = \"b\"\n[apps.b]\nextends = \"a\"\n",
            )],
            &[],
            "pypm.toml:2:11: `extends` cycle: a → b → a",
        ),
    ];
    for (what, files, profiles, want) in cases {
        let (_, errs) = merged(files, profiles);
        assert_eq!(
            errs.first().map(String::as_str),
            Some(*want),
            "{what}: {errs:?}"
        );
    }
}
