//! The judge on saved run dirs of real runs (`tests/data/runs/`, copied
//! from `target/ksh/runs/...` after `cargo xtask test`, `test --baseline`
//! and `test --expect-baseline-failures`): judged again, each gives the
//! verdicts its run recorded (`verdicts.json`), and a run dir missing a
//! file, or from a harness without the record, is refused by name.

use std::fs;
use std::path::{Path, PathBuf};

use harness::results::judge::{self, RECORD_FORMAT};
use harness::results::run_record::{self, INPUT_FILE, VERDICTS_FILE};

fn runs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs")
}

/// Judges the saved run dir `name` again; the verdicts as `verdicts.json`
/// writes them, and those it recorded.
fn rejudge(name: &str) -> (serde_json::Value, serde_json::Value) {
    let dir = runs().join(name);
    let (input, texts) = run_record::load(&dir).unwrap();
    let judged = judge::judge(&input, &texts);
    let now = run_record::verdicts_json(&input.cell.name(), &input, &judged);
    let then: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join(VERDICTS_FILE)).unwrap()).unwrap();
    (now, with_kernel_in_names(then))
}

/// A run recorded before the kernel line was part of every name (its
/// `judge-input.json` has no `kernel`: it was of 6.12) names its cell
/// `ARCH/CONFIG`; today's names start with the line (`6.12/ARCH/CONFIG`).
/// The recorded verdicts are kept as they were written and renamed here.
fn with_kernel_in_names(mut v: serde_json::Value) -> serde_json::Value {
    let prefix = |s: &str| {
        if s.starts_with("6.12/") || s.starts_with("7.3/") {
            s.to_string()
        } else {
            format!("6.12/{s}")
        }
    };
    if let Some(cell) = v["cell"].as_str() {
        v["cell"] = prefix(cell).into();
    }
    for case in v["cases"].as_array_mut().unwrap() {
        let name = prefix(case["name"].as_str().unwrap());
        case["name"] = name.into();
    }
    v
}

/// `passed, failed, measured, skipped` of a `verdicts.json`.
fn summary(v: &serde_json::Value) -> [u64; 4] {
    ["passed", "failed", "measured", "skipped"].map(|k| v["summary"][k].as_u64().unwrap())
}

#[test]
fn saved_runs_are_judged_as_when_they_ran() {
    for (name, cell, want) in [
        ("x86_64-minimal-pass", "6.12/x86_64/minimal", [42, 0, 1, 1]),
        ("arm64-minimal-pass", "6.12/arm64/minimal", [42, 0, 1, 1]),
        // Mainline, recorded with the kernel line in the record and names.
        (
            "7.3-x86_64-minimal-pass",
            "7.3/x86_64/minimal",
            [42, 0, 1, 1],
        ),
        ("7.3-arm64-minimal-pass", "7.3/arm64/minimal", [42, 0, 1, 1]),
        // The baseline kernel judged as any other: its size-blind answers
        // fail.
        (
            "x86_64-minimal-baseline",
            "6.12/x86_64/minimal",
            [26, 15, 1, 2],
        ),
        // The same kind of kernel under the strict baseline proof.
        (
            "arm64-minimal-baseline-proof",
            "6.12/arm64/minimal",
            [41, 0, 1, 2],
        ),
        // Mainline's baseline under the proof: ftrace/filter-all is among
        // the cases that must fail there (KERNEL_BASELINE_FAILURES).
        (
            "7.3-x86_64-minimal-baseline-proof",
            "7.3/x86_64/minimal",
            [41, 0, 1, 2],
        ),
    ] {
        let (now, then) = rejudge(name);
        assert_eq!(now["cell"], cell, "{name}");
        assert_eq!(summary(&then), want, "{name}: the recorded run");
        // Case by case first, so a difference names its case.
        let (a, b) = (
            now["cases"].as_array().unwrap(),
            then["cases"].as_array().unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{name}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "{name}");
        }
        assert_eq!(now, then, "{name}");
    }
}

#[test]
fn the_failing_run_fails_with_its_diagnostics() {
    let (now, _) = rejudge("x86_64-minimal-baseline");
    let case = now["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "6.12/x86_64/minimal/sizes/start-size")
        .unwrap();
    assert_eq!(case["status"], "fail");
    let msg = case["message"].as_str().unwrap();
    assert!(
        msg.starts_with("# 4011 of 26220 mismatched") && msg.contains("console log: "),
        "{msg}"
    );
}

#[test]
fn a_kernel_lines_own_baseline_failure_is_judged_by_the_line() {
    let filter_all = |v: &serde_json::Value| {
        let case = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().ends_with("/ftrace/filter-all"))
            .unwrap();
        case["status"].as_str().unwrap().to_string()
    };
    let dir = runs().join("7.3-x86_64-minimal-baseline-proof");
    let (mut input, texts) = run_record::load(&dir).unwrap();
    let judged = judge::judge(&input, &texts);
    let now = run_record::verdicts_json(&input.cell.name(), &input, &judged);
    // Mainline's size-blind ftrace names abort's call site after a marker:
    // a failure the proof requires there.
    assert_eq!(filter_all(&now), "pass");
    // The same answers from a 6.12 kernel would be a failing witness.
    input.cell.id = input
        .cell
        .id
        .clone()
        .of_kernel(harness::cell::Kernel::V6_12);
    let judged = judge::judge(&input, &texts);
    let then = run_record::verdicts_json(&input.cell.name(), &input, &judged);
    assert_eq!(filter_all(&then), "fail");
}

/// A copy of the saved run dir `name` without the files `drop`.
fn copy_without(name: &str, drop: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in fs::read_dir(runs().join(name)).unwrap() {
        let e = e.unwrap();
        let f = e.file_name();
        if !drop.iter().any(|d| f == *d) {
            fs::copy(e.path(), d.path().join(&f)).unwrap();
        }
    }
    d
}

fn load_error(dir: &Path) -> String {
    format!("{:#}", run_record::load(dir).unwrap_err())
}

#[test]
fn a_missing_file_is_named_with_the_run_dir() {
    for file in ["console.log", "results.ktap"] {
        let d = copy_without("x86_64-minimal-pass", &[file]);
        let e = load_error(d.path());
        assert!(
            e.contains(&format!("missing {file}")) && e.contains(&d.path().display().to_string()),
            "{e}"
        );
    }
}

#[test]
fn a_run_dir_of_an_older_harness_says_so() {
    let d = copy_without("x86_64-minimal-pass", &[INPUT_FILE, VERDICTS_FILE]);
    let e = load_error(d.path());
    assert!(
        e.contains(&d.path().display().to_string())
            && e.contains("older harness")
            && e.contains(INPUT_FILE),
        "{e}"
    );
    // A record of another format.
    let d = copy_without("x86_64-minimal-pass", &[]);
    let path = d.path().join(INPUT_FILE);
    let text = fs::read_to_string(&path).unwrap().replacen(
        &format!("\"format\": {RECORD_FORMAT}"),
        "\"format\": 999",
        1,
    );
    fs::write(&path, text).unwrap();
    let e = load_error(d.path());
    assert!(
        e.contains("record format 999") && e.contains(&format!("reads format {RECORD_FORMAT}")),
        "{e}"
    );
    // Not a run dir at all.
    let e = load_error(&d.path().join("nowhere"));
    assert!(e.contains("no such run dir"), "{e}");
}
