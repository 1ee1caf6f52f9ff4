//! What a run dir keeps for the judge: `judge-input.json` (the judge's
//! input besides the two texts, `results::judge::JudgeInput`), beside
//! QEMU's `console.log` and `results.ktap`; and `verdicts.json`, the
//! judge's output as the run judged it. `cargo xtask judge RUN_DIR` loads
//! the first three and judges again.
//!
//! `verdicts.json` (for tools such as `bench`): `{"format": 1, "cell":
//! "KERNEL/ARCH/CONFIG", "mode": ..., "cases": [{"name", "status": "pass" |
//! "fail" | "not-run" | "measured" | "skip", "message"?}], "counts":
//! [{"probe", "case", "mismatched", "checked"}], "measured": [{"case",
//! "figure"}], "mutant": null | {"caught" | "missed": [..]} | {"broken":
//! ".."}, "summary": {"passed", "failed", "measured", "skipped"}}`.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cell::Status;
use crate::results::judge::{BootRecord, JudgeInput, Judged, RunTexts, RECORD_FORMAT};
use crate::vm::qemu::{CONSOLE_LOG, RESULTS_FILE};

/// The judge's input, in the run dir.
pub const INPUT_FILE: &str = "judge-input.json";
/// The judge's output as the run judged it, in the run dir.
pub const VERDICTS_FILE: &str = "verdicts.json";

/// Saves `input` and the verdicts `judged` in `run_dir`.
pub fn save(run_dir: &Path, input: &JudgeInput, judged: &Judged) -> Result<()> {
    let write = |name: &str, value: String| {
        let path = run_dir.join(name);
        fs::write(&path, value + "\n").with_context(|| format!("writing {}", path.display()))
    };
    write(INPUT_FILE, serde_json::to_string_pretty(input)?)?;
    write(
        VERDICTS_FILE,
        serde_json::to_string_pretty(&verdicts_json(&input.cell.name(), input, judged))?,
    )
}

/// Loads what the judge needs from `run_dir` (a run dir of a cell, or its
/// `latest` link). A missing file is named with the run dir; a run dir of
/// a harness that did not save the record, or saved another format of
/// it, says so.
pub fn load(run_dir: &Path) -> Result<(JudgeInput, RunTexts)> {
    if !run_dir.is_dir() {
        bail!("{}: no such run dir", run_dir.display());
    }
    let input_path = run_dir.join(INPUT_FILE);
    let text = match fs::read_to_string(&input_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if run_dir.join(RESULTS_FILE).exists() || run_dir.join(CONSOLE_LOG).exists() {
                bail!(
                    "{}: no {INPUT_FILE}: this run dir was written by an older harness, one that did not save the judge's input; rerun the cell to judge it",
                    run_dir.display()
                );
            }
            bail!(
                "{}: missing {INPUT_FILE} (not a run dir of `cargo xtask test`?)",
                run_dir.display()
            );
        }
        Err(e) => bail!("{}: {e}", input_path.display()),
    };
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not JSON", input_path.display()))?;
    match value.get("format").and_then(Value::as_u64) {
        Some(f) if f == u64::from(RECORD_FORMAT) => {}
        Some(f) => bail!(
            "{}: record format {f}, but this harness reads format {RECORD_FORMAT}: judge it with the harness that wrote it, or rerun the cell",
            input_path.display()
        ),
        None => bail!(
            "{}: no record format: written by an older harness; rerun the cell",
            input_path.display()
        ),
    }
    let input: JudgeInput =
        serde_json::from_value(value).with_context(|| format!("{}", input_path.display()))?;
    let texts = match input.boot {
        Some(BootRecord::Ran(_)) => {
            let read = |name: &str| -> Result<String> {
                let path = run_dir.join(name);
                match fs::read(&path) {
                    Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                        "{}: missing {name}, which the judge needs (the run's VM wrote it)",
                        run_dir.display()
                    ),
                    Err(e) => bail!("{}: {e}", path.display()),
                }
            };
            RunTexts {
                results: read(RESULTS_FILE)?,
                console: Ok(read(CONSOLE_LOG)?),
            }
        }
        _ => RunTexts {
            results: String::new(),
            console: Ok(String::new()),
        },
    };
    Ok((input, texts))
}

/// A case's status as `verdicts.json` writes it: the state and its text.
fn status_json(status: &Status) -> (&'static str, Option<String>) {
    match status {
        Status::Pass => ("pass", None),
        // With the words that say whose failure it is.
        Status::Fail { .. } => ("fail", status.failure()),
        Status::NotRun(m) => ("not-run", Some(m.clone())),
        Status::Measured(m) => ("measured", Some(m.clone())),
        Status::Skip(m) => ("skip", Some(m.clone())),
    }
}

/// The verdicts of `cell` as `verdicts.json` holds them (the module's
/// doc has the format).
pub fn verdicts_json(cell: &str, input: &JudgeInput, judged: &Judged) -> Value {
    let (mut passed, mut failed, mut measured, mut skipped) = (0, 0, 0, 0);
    let cases: Vec<Value> = judged
        .cases
        .iter()
        .map(|c| {
            let (state, message) = status_json(&c.status);
            match state {
                "pass" => passed += 1,
                "measured" => measured += 1,
                "skip" => skipped += 1,
                _ => failed += 1,
            }
            match message {
                Some(m) => json!({"name": c.name, "status": state, "message": m}),
                None => json!({"name": c.name, "status": state}),
            }
        })
        .collect();
    json!({
        "format": RECORD_FORMAT,
        "cell": cell,
        "mode": input.mode,
        "cases": cases,
        "counts": judged.counts.iter().map(|c| json!({
            "probe": c.probe, "case": c.case, "mismatched": c.mismatched, "checked": c.checked,
        })).collect::<Vec<_>>(),
        "measured": judged.measured.iter().map(|(case, figure)| json!({
            "case": case, "figure": figure,
        })).collect::<Vec<_>>(),
        "mutant": judged.mutant,
        "summary": {
            "passed": passed, "failed": failed, "measured": measured, "skipped": skipped,
        },
    })
}
