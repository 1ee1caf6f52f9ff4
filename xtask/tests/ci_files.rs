//! The sample GitHub workflow is valid YAML and consumes `cargo xtask
//! matrix` the way the README says; the matrix is valid JSON with one entry
//! per arch × config × kernel.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn workflow_is_valid_yaml_and_uses_the_matrix() {
    let text = std::fs::read_to_string(root().join(".github/workflows/kallsyms.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
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
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["matrix", "--all-configs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
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
    assert_eq!(include.len(), cells, "arch × variant × 1 kernel");
    assert!(include
        .iter()
        .any(|c| c["arch"] == "x86_64" && c["config"] == "up"));
    assert!(!include
        .iter()
        .any(|c| c["arch"] == "arm64" && c["config"] == "up"));
    for cell in include {
        let cmd = cell["command"].as_str().unwrap();
        assert!(
            cmd.starts_with("cargo xtask test --arch ") && cmd.contains("--junit "),
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
