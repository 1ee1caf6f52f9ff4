//! The sample GitHub workflow is valid YAML and consumes `cargo xtask
//! matrix` the way the README says; the matrix is valid JSON with one entry
//! per arch × config × kernel, holding every field the workflow reads.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn workflow() -> serde_yaml::Value {
    let text = std::fs::read_to_string(root().join(".github/workflows/kallsyms.yml")).unwrap();
    serde_yaml::from_str(&text).expect("valid YAML")
}

/// What `cargo xtask ARGS` prints on stdout; it must succeed.
fn xtask_stdout<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap();
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "cargo xtask {}: {}",
        shown.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The JSON `cargo xtask ARGS` prints.
fn xtask_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&xtask_stdout(args)).expect("JSON")
}

/// Every string in `v` (keys and values; comments are gone).
fn strings(v: &serde_yaml::Value, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::String(s) => out.push(s.clone()),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
        serde_yaml::Value::Mapping(m) => m.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        serde_yaml::Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

/// The `FIELD`s of every `matrix.FIELD` inside a `${{ }}` expression of `s`
/// (not `steps.matrix.…`: the context must stand alone).
fn matrix_fields(s: &str, out: &mut BTreeSet<String>) {
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        let expr_end = rest[start..].find("}}").map_or(rest.len(), |e| start + e);
        let expr = &rest[start + 3..expr_end];
        for (i, _) in expr.match_indices("matrix.") {
            let before = expr[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || "_-.".contains(c)) {
                continue;
            }
            let field: String = expr[i + "matrix.".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            out.insert(field);
        }
        rest = &rest[expr_end..];
    }
}

#[test]
fn workflow_is_valid_yaml_and_uses_the_matrix() {
    let text = std::fs::read_to_string(root().join(".github/workflows/kallsyms.yml")).unwrap();
    let doc = workflow();
    let jobs = doc.get("jobs").expect("jobs");
    let test = jobs.get("test").expect("a test job");
    let matrix = test
        .get("strategy")
        .and_then(|s| s.get("matrix"))
        .and_then(|m| m.as_str())
        .unwrap();
    assert!(
        matrix.contains("fromJSON(needs.plan.outputs.matrix)"),
        "{matrix}"
    );
    assert!(text.contains("cargo xtask matrix"));
    assert!(
        text.contains("hashFiles('kernel-configs/**', 'patches/**'"),
        "cache key covers fragments and patches"
    );
}

#[test]
fn matrix_is_json_with_every_cell() {
    let v = xtask_json(&["matrix", "--all-configs"]);
    let include = v["include"].as_array().unwrap();
    // Every variant on both arches, except those whose fragment limits
    // them to some (`# arches: x86_64`).
    let mut cells = 0;
    for e in std::fs::read_dir(root().join("kernel-configs/variants")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        cells += match text.lines().find_map(|l| l.strip_prefix("# arches:")) {
            Some(list) => list.split(',').count(),
            None => 2,
        };
    }
    let kernels = 2;
    assert_eq!(include.len(), cells * kernels, "kernel × arch × variant");
    for k in ["6.12", "7.3"] {
        assert!(include.iter().any(|c| c["kernel"] == k), "{k}");
    }
    assert!(include
        .iter()
        .any(|c| c["arch"] == "x86_64" && c["config"] == "up"));
    assert!(!include
        .iter()
        .any(|c| c["arch"] == "arm64" && c["config"] == "up"));
    for cell in include {
        let cmd = cell["command"].as_str().unwrap();
        assert!(
            cmd.starts_with("cargo xtask test --kernel ") && cmd.contains("--junit "),
            "{cmd}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["matrix", "--arch", "mips"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid: x86_64, arm64"));
}

/// Renaming or dropping a field of `cargo xtask matrix` must fail here, not
/// in a CI run: every `matrix.FIELD` the workflow reads is a non-empty
/// string in every cell (all configs, both toolchains).
#[test]
fn every_matrix_field_the_workflow_reads_is_in_every_cell() {
    let mut all = Vec::new();
    strings(&workflow(), &mut all);
    let mut used = BTreeSet::new();
    all.iter().for_each(|s| matrix_fields(s, &mut used));
    for field in ["arch", "config", "toolchain", "kernel", "junit"] {
        assert!(
            used.contains(field),
            "the workflow no longer reads matrix.{field}: {used:?}"
        );
    }
    let matrix = xtask_json(&["matrix", "--all-configs", "--toolchain", "gcc,llvm"]);
    let cells = matrix["include"].as_array().expect("include: [...]");
    assert!(cells.iter().any(|c| c["toolchain"] == "llvm"));
    // 7.3 needs clang >= 17: the workflow's bookworm image cannot build
    // its LLVM cells, so the matrix leaves them out.
    assert!(!cells
        .iter()
        .any(|c| c["toolchain"] == "llvm" && c["kernel"] == "7.3"));
    let text = std::fs::read_to_string(root().join(".github/workflows/kallsyms.yml")).unwrap();
    assert!(
        text.contains("container: debian:bookworm"),
        "xtask/src/matrix.rs assumes the workflow's image is bookworm (clang 14)"
    );
    for cell in cells {
        for field in &used {
            assert!(
                cell[field].as_str().is_some_and(|v| !v.is_empty()),
                "the workflow reads matrix.{field}, which this cell lacks: {cell}"
            );
        }
    }
}

/// The test job runs each cell's `command` (rebuilt from its fields, which
/// reach the script through `env:`), and no `run:` script expands an
/// expression itself.
#[test]
fn test_step_runs_the_cells_command_through_env() {
    let doc = workflow();
    let job = &doc["jobs"]["test"];
    let env = job["env"].as_mapping().expect("the test job's env:");
    let steps = job["steps"].as_sequence().unwrap();
    for step in doc["jobs"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(|j| j["steps"].as_sequence().unwrap())
    {
        if let Some(run) = step["run"].as_str() {
            assert!(!run.contains("${{"), "an expression inside run: {run}");
        }
    }
    let run = steps
        .iter()
        .find(|s| s["name"] == "Test")
        .and_then(|s| s["run"].as_str())
        .expect("a Test step with run:");
    let matrix = xtask_json(&["matrix", "--all-configs", "--toolchain", "gcc,llvm"]);
    for cell in matrix["include"].as_array().unwrap() {
        let mut command = run.trim().to_string();
        for (name, value) in env {
            let (name, value) = (name.as_str().unwrap(), value.as_str().unwrap());
            let field = value
                .strip_prefix("${{ matrix.")
                .and_then(|v| v.strip_suffix(" }}"))
                .unwrap_or_else(|| panic!("env {name}: {value} is not a matrix field"));
            let cell_value = cell[field]
                .as_str()
                .unwrap_or_else(|| panic!("env {name}: the cell has no {field}: {cell}"));
            command = command.replace(&format!("\"${name}\""), cell_value);
        }
        assert_eq!(command, cell["command"].as_str().unwrap(), "{run}");
    }
}

/// Every action is pinned to a full commit hash, its tag in a comment.
#[test]
fn actions_are_pinned_to_commits() {
    let text = std::fs::read_to_string(root().join(".github/workflows/kallsyms.yml")).unwrap();
    let uses: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .strip_prefix("uses: ")
        })
        .collect();
    assert!(uses.len() >= 4, "{uses:?}");
    for u in uses {
        let (action, rest) = u.split_once('@').unwrap_or_else(|| panic!("{u}"));
        let (hash, comment) = rest
            .split_once(" # v")
            .unwrap_or_else(|| panic!("no tag: {u}"));
        assert!(
            hash.len() == 40 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{action} not pinned to a commit: {u}"
        );
        assert!(!comment.is_empty(), "{u}");
    }
}

/// The summary step's command on the saved failing JUnit file prints the
/// saved rendering; a missing file is an error naming it.
#[test]
fn summary_renders_the_saved_junit_file() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let stdout = xtask_stdout(&[
        "summary".as_ref(),
        "--junit".as_ref(),
        data.join("junit-failing.xml").as_os_str(),
    ]);
    let want = std::fs::read_to_string(data.join("junit-failing.md")).unwrap();
    assert_eq!(String::from_utf8(stdout).unwrap(), want);

    let missing = data.join("no-such-junit.xml");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["summary", "--junit"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}
