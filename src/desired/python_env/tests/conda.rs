//! Conda lookup (SPEC §8 "Conda names") and the variables a conda env implies.

use super::*;

/// One env named `ml`, reachable only through one source each.
#[test]
fn conda_names_are_found_through_every_source() {
    type Setup = fn(&Path) -> (Vec<(&'static str, String)>, PathBuf);
    let cases: &[(&str, Setup)] = &[
        ("CONDA_ENVS_PATH", |t| {
            let p = fake_conda(&t.join("b/ml"));
            (
                vec![(
                    "CONDA_ENVS_PATH",
                    format!("{}:{}", s(&t.join("a")), s(&t.join("b"))),
                )],
                p,
            )
        }),
        ("CONDA_ENVS_PATH with ~", |t| {
            (
                vec![("CONDA_ENVS_PATH", "~/envs".into())],
                fake_conda(&t.join("envs/ml")),
            )
        }),
        ("MAMBA_ROOT_PREFIX", |t| {
            (
                vec![("MAMBA_ROOT_PREFIX", s(&t.join("mamba")))],
                fake_conda(&t.join("mamba/envs/ml")),
            )
        }),
        ("CONDA_ROOT", |t| {
            (
                vec![("CONDA_ROOT", s(&t.join("root")))],
                fake_conda(&t.join("root/envs/ml")),
            )
        }),
        ("CONDA_EXE", |t| {
            (
                vec![("CONDA_EXE", s(&t.join("opt/conda/bin/conda")))],
                fake_conda(&t.join("opt/conda/envs/ml")),
            )
        }),
        ("CONDA_PREFIX of base", |t| {
            let root = fake_conda(&t.join("base"));
            (
                vec![("CONDA_PREFIX", s(&root))],
                fake_conda(&root.join("envs/ml")),
            )
        }),
        ("CONDA_PREFIX of a sibling env", |t| {
            let other = fake_conda(&t.join("root/envs/other"));
            (
                vec![("CONDA_PREFIX", s(&other))],
                fake_conda(&t.join("root/envs/ml")),
            )
        }),
        ("~/miniforge3", |t| {
            (vec![], fake_conda(&t.join("miniforge3/envs/ml")))
        }),
        ("~/mambaforge", |t| {
            (vec![], fake_conda(&t.join("mambaforge/envs/ml")))
        }),
        ("~/miniconda3", |t| {
            (vec![], fake_conda(&t.join("miniconda3/envs/ml")))
        }),
        ("~/anaconda3", |t| {
            (vec![], fake_conda(&t.join("anaconda3/envs/ml")))
        }),
        ("~/.conda", |t| {
            (vec![], fake_conda(&t.join(".conda/envs/ml")))
        }),
        ("environments.txt", |t| {
            let p = fake_conda(&t.join("projects/x/ml"));
            fs::create_dir_all(t.join(".conda")).unwrap();
            let listed = format!(
                "# comment\n{}\n\n{}\n",
                s(&t.join("projects/y/other")),
                s(&p)
            );
            fs::write(t.join(".conda/environments.txt"), listed).unwrap();
            (vec![], p)
        }),
    ];
    for (source, setup) in cases {
        let tmp = TempDir::new().unwrap();
        let (vars, expected) = setup(tmp.path());
        let h = HostEnv::new(vars, Some(tmp.path().to_path_buf()));
        assert_eq!(find_conda_env("ml", &h), Ok(expected), "through {source}");
        // Without the source (no variables, another home), the env is not found.
        let other_home = TempDir::new().unwrap();
        let bare = HostEnv {
            home: Some(other_home.path().to_path_buf()),
            ..HostEnv::default()
        };
        assert!(find_conda_env("ml", &bare).is_err(), "{source}");
    }
}

#[test]
fn conda_sources_are_searched_in_spec_order() {
    let tmp = TempDir::new().unwrap();
    let t = tmp.path();
    let places = [
        fake_conda(&t.join("envs_path/ml")),
        fake_conda(&t.join("mamba/envs/ml")),
        fake_conda(&t.join("root/envs/ml")),
        fake_conda(&t.join("exe/envs/ml")),
        fake_conda(&t.join("prefix/envs/ml")),
        fake_conda(&t.join("miniforge3/envs/ml")),
        fake_conda(&t.join(".conda/envs/ml")),
    ];
    let vars = [
        ("CONDA_ENVS_PATH", s(&t.join("envs_path"))),
        ("MAMBA_ROOT_PREFIX", s(&t.join("mamba"))),
        ("CONDA_ROOT", s(&t.join("root"))),
        ("CONDA_EXE", s(&t.join("exe/condabin/conda"))),
        ("CONDA_PREFIX", s(&t.join("prefix"))),
    ];
    for (i, place) in places.iter().enumerate() {
        let h = HostEnv::new(vars.iter().cloned(), Some(t.to_path_buf()));
        assert_eq!(find_conda_env("ml", &h).as_ref(), Ok(place), "step {i}");
        fs::remove_dir_all(place.join("conda-meta")).unwrap();
    }
}

#[test]
fn conda_base_is_the_root() {
    let tmp = TempDir::new().unwrap();
    let root = fake_conda(&tmp.path().join("miniconda3"));
    fs::create_dir_all(root.join("condabin")).unwrap();
    let h = host(&[("CONDA_EXE", &s(&root.join("bin/conda")))], None);
    assert_eq!(find_conda_env("base", &h), Ok(root.clone()));
    // By prefix, a root activates as `base`, like `conda activate PREFIX`.
    let env = resolve_declared("b", &EnvDecl::Conda(s(&root)), &h).unwrap();
    assert_eq!(var(&env, "CONDA_DEFAULT_ENV"), Some("base"));
}

#[test]
fn missing_conda_env_lists_every_place_tried() {
    let tmp = TempDir::new().unwrap();
    let t = tmp.path();
    fake_conda(&t.join("mamba/envs/torch2"));
    let h = host(
        &[
            ("CONDA_ENVS_PATH", &s(&t.join("e"))),
            ("MAMBA_ROOT_PREFIX", &s(&t.join("mamba"))),
        ],
        Some(t),
    );
    let looked = [
        "e/torch",
        "mamba/envs/torch",
        "miniforge3/envs/torch",
        "mambaforge/envs/torch",
        "miniconda3/envs/torch",
        "anaconda3/envs/torch",
        ".conda/envs/torch",
        ".conda/environments.txt",
    ]
    .map(|p| s(&t.join(p)))
    .join(", ");
    assert_eq!(
        err(find_conda_env("torch", &h)),
        format!("conda environment `torch` not found; looked in {looked} (did you mean `torch2`?)")
    );
    let wrapped = err(resolve_declared("ml", &EnvDecl::Conda("torch".into()), &h));
    assert!(
        wrapped.starts_with("environment `ml`: conda environment `torch` not found; looked in"),
        "{wrapped}"
    );
}

#[test]
fn declared_conda_env_sets_its_variables() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("miniforge3");
    let prefix = fake_conda(&root.join("envs/ml"));
    let state = r#"{"env_vars": {"CUDA_VISIBLE_DEVICES": "0", "HF_HOME": "/data/hf"}}"#;
    fs::write(prefix.join("conda-meta/state"), state).unwrap();
    let h = host(&[("PATH", "/usr/bin")], Some(tmp.path()));
    let env = resolve_declared("gpu", &EnvDecl::Conda("ml".into()), &h).unwrap();
    assert_eq!(env.interpreter, prefix.join("bin/python"));
    assert_eq!(env.bin_dir, Some(prefix.join("bin")));
    let expected = [
        ("CONDA_PREFIX", s(&prefix)),
        ("CONDA_DEFAULT_ENV", "ml".into()),
        ("PATH", format!("{}:/usr/bin", s(&prefix.join("bin")))),
        ("CUDA_VISIBLE_DEVICES", "0".into()),
        ("HF_HOME", "/data/hf".into()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    assert_eq!(env.vars, expected);
    assert_eq!(
        env.rule.to_string(),
        format!("environment `gpu` (conda {})", prefix.display())
    );

    // The same env by prefix path.
    let by_path = resolve_declared("gpu", &EnvDecl::Conda(s(&prefix)), &h).unwrap();
    assert_eq!(by_path.vars, expected);
}

#[test]
fn bad_conda_prefixes_and_state_are_errors() {
    let tmp = TempDir::new().unwrap();
    let t = tmp.path();
    let h = HostEnv::default();
    let not_conda = t.join("plain");
    fs::create_dir_all(&not_conda).unwrap();
    let n = not_conda.display();
    assert_eq!(
        err(resolve_declared("x", &EnvDecl::Conda(s(&not_conda)), &h)),
        format!("environment `x`: {n} is not a conda environment; looked for {n}/conda-meta")
    );
    let no_python = t.join("nopy");
    fs::create_dir_all(no_python.join("conda-meta")).unwrap();
    let n = no_python.display();
    assert_eq!(
        err(resolve_declared("x", &EnvDecl::Conda(s(&no_python)), &h)),
        format!("environment `x`: conda environment {n} has no python; looked for {n}/bin/python")
    );
    let prefix = fake_conda(&t.join("envs/bad"));
    fs::write(prefix.join("conda-meta/state"), r#"{"env_vars": {"N": 1}}"#).unwrap();
    let p = prefix.display();
    assert_eq!(
        err(resolve_declared("x", &EnvDecl::Conda(s(&prefix)), &h)),
        format!(
            "environment `x`: cannot read the conda environment's variables from {p}/conda-meta/state: \
             `env_vars.N` is not a string"
        )
    );
}
