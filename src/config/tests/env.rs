//! `${VAR}` expansion, `env` and `env_file`: precedence, references between `env` keys, cycles and
//! invalid names.

use super::*;

#[test]
fn expansion_uses_env_file_and_env() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join("a.env"), "NAME=from-file\n").unwrap_or_else(|e| panic!("{e}"));
    let c = parse_in(
        dir.path(),
        r#"
[apps.x]
command = "echo ${NAME} ${GREETING} $$HOME ${HOME}"
env_file = "a.env"
env = { GREETING = "hi-${NAME}" }
"#,
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(
        c.apps["x"].program,
        Program::Command(vec![
            "echo".into(),
            "from-file".into(),
            "hi-from-file".into(),
            "$HOME".into(),
            "/home/u".into()
        ])
    );
}

#[test]
fn env_values_reference_other_env_keys_in_any_order() {
    let want = vec![
        ("B".to_string(), "b".to_string()),
        ("A".into(), "b-a".into()),
    ];
    for src in [
        "[apps.a]\ncommand = \"x\"\nenv = { B = \"b\", A = \"${B}-a\" }\n",
        "[apps.a]\ncommand = \"x\"\n[apps.a.env]\nB = \"b\"\nA = \"${B}-a\"\n",
    ] {
        assert_eq!(ok(src).apps["a"].env, want, "{src}");
    }
    // Declared before the key it uses, through a chain, and visible to `command`.
    let c = ok(
        "[apps.a]\ncommand = \"echo ${A}\"\nenv = { A = \"${B}/a\", B = \"${C}/b\", C = \"c\" }\n",
    );
    assert_eq!(
        c.apps["a"].env,
        vec![
            ("A".to_string(), "c/b/a".to_string()),
            ("B".into(), "c/b".into()),
            ("C".into(), "c".into())
        ]
    );
    assert_eq!(
        c.apps["a"].program,
        Program::Command(vec!["echo".into(), "c/b/a".into()])
    );
}

#[test]
fn env_references_follow_the_environment_precedence() {
    // supervisor env < env_file < env; a key naming itself gets the next lower value.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join("a.env"), "PORT=9000\nF=file\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = parse_in(
        dir.path(),
        r#"
[apps.a]
command = "x"
env_file = "a.env"
env = { HOME = "/x:${HOME}", SEE_HOME = "${HOME}", PORT = "${PORT}1", SEE_PORT = "${PORT}", SEE_F = "${F}" }
"#,
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    let env: HashMap<_, _> = c.apps["a"].env.iter().cloned().collect();
    assert_eq!(env["HOME"], "/x:/home/u");
    assert_eq!(env["SEE_HOME"], "/x:/home/u");
    assert_eq!(env["PORT"], "90001");
    assert_eq!(env["SEE_PORT"], "90001");
    assert_eq!(env["SEE_F"], "file");
}

#[test]
fn env_reference_cycle_is_an_error_naming_it() {
    let out = errors("[apps.a]\ncommand = \"x\"\nenv = { X1 = \"${X2}\", X2 = \"${X1}\" }\n");
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("reference cycle in `env` of app `a`: X1 → X2 → X1"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:15"), "{out}");
    assert!(!out.contains("undefined"), "{out}");
    // A key using the cycle fails without an error of its own; an undefined name is reported
    // once, where it is written.
    let out = errors(
        "[apps.a]\ncommand = \"x\"\nenv = { Y = \"${X1}${U}\", X1 = \"${X2}\", X2 = \"${X1}\", U = \"${NOPE}\" }\n",
    );
    assert_eq!(error_count(&out), 2, "{out}");
    assert!(
        out.contains("undefined variable `NOPE` in `env.U` of app `a`"),
        "{out}"
    );
}

#[test]
fn env_file_path_expands_from_env() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join("prod.env"), "DB=prod-db\n").unwrap_or_else(|e| panic!("{e}"));
    let c = parse_in(
        dir.path(),
        "[apps.a]\ncommand = \"echo ${DB}\"\nenv_file = \"${STAGE}.env\"\nenv = { STAGE = \"prod\" }\n",
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(c.apps["a"].env_file, vec![dir.path().join("prod.env")]);
    assert_eq!(
        c.apps["a"].env_file_vars,
        vec![("DB".to_string(), "prod-db".to_string())]
    );
    assert_eq!(
        c.apps["a"].program,
        Program::Command(vec!["echo".into(), "prod-db".into()])
    );
}

#[test]
fn env_file_path_that_cannot_expand_is_one_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let render = |src: &str| match parse_in(dir.path(), src) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.render(),
    };
    let out = render("[apps.a]\ncommand = \"x\"\nenv_file = \"${STAGE}.env\"\n");
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("undefined variable `STAGE` in `env_file` of app `a`"),
        "{out}"
    );
    assert!(!out.contains("cannot read"), "{out}");
    // Through an `env` value that fails on its own: reported there only.
    let out = render(
        "[apps.a]\ncommand = \"x\"\nenv_file = \"${STAGE}.env\"\nenv = { STAGE = \"${NOPE}\" }\n",
    );
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("undefined variable `NOPE` in `env.STAGE`"),
        "{out}"
    );
    // Through an `env` value that needs the env files being read.
    std::fs::write(dir.path().join("base.env"), "S=prod\n").unwrap_or_else(|e| panic!("{e}"));
    let out = render(
        "[apps.a]\ncommand = \"x\"\nenv_file = [\"base.env\", \"${STAGE}.env\"]\nenv = { STAGE = \"${S}\" }\n",
    );
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("uses `env.STAGE`, whose value needs a variable from an env_file"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:26"), "{out}");
}

#[test]
fn env_names_cannot_be_empty_or_hold_equals_or_nul() {
    let out = errors(
        "[apps.a]\ncommand = \"x\"\nenv = { \"A=B\" = \"x\", \"\" = \"y\", \"C\\u0000\" = \"z\", OK = \"1\" }\n",
    );
    assert_eq!(error_count(&out), 3, "{out}");
    assert!(
        out.contains("invalid variable name `A=B` in `env` of app `a`"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:9"), "{out}");
    assert!(
        out.contains("empty variable name in `env` of app `a`"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:22"), "{out}");
    assert!(out.contains("invalid variable name `C\\0`"), "{out}");
    let out = errors("[apps.a]\ncommand = \"x\"\n[apps.a.env]\n\"X=1\" = \"x\"\n");
    assert!(out.contains("--> pypm.toml:4:1"), "{out}");
}

#[test]
fn an_empty_variable_name_says_so() {
    let e = errors("[apps.a]\ncommand = \"echo ${}\"\n");
    assert!(e.contains("empty variable name `${}`"), "{e}");
}
