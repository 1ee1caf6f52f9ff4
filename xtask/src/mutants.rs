//! `cargo xtask mutants`: the harness proves its own sensitivity. Each
//! known-bad kernel (`patches/6.12/mutants/`) is built incrementally in the
//! patched build dir and tested with every probe; a mutant is *caught* when
//! at least one case fails and so does every case its `must-fail:` line
//! names, *missed* otherwise. Any miss (or a mutant that
//! does not build) fails the command. The tree is put back to the series
//! when it ends, also on error.

use std::time::Instant;

use anyhow::{bail, Result};
use harness::kernel::mutants::{self, Mutant};
use harness::kernel::prereqs;
use harness::kernel::source::KernelSource;
use harness::proc::fmt_duration;
use harness::results::report::Status;
use harness::testrun::{self, Cell, RunOptions};

use crate::flags::MutantsArgs;
use crate::selection;

/// What became of one mutant in one cell.
enum Verdict {
    Caught(Vec<String>),
    Missed,
    /// Some case failed, but not every case the mutant is about.
    MissedCases {
        failed: Vec<String>,
        passed: Vec<String>,
    },
    Broken(String),
}

/// Reverts the mutant on drop, so an error leaves the series in place.
struct Restore<'a>(&'a KernelSource);
impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Err(e) = mutants::revert(&self.0.tree) {
            eprintln!("ksh: {e:#}");
        }
    }
}

pub fn run(args: MutantsArgs) -> Result<i32> {
    let mut sel = args.kernel.clone();
    if sel.arches.is_empty() {
        sel.arches = vec!["x86_64".into()];
    }
    if sel.baseline || sel.kernel_tree.is_some() {
        bail!(
            "mutants are patches on top of the series: --baseline and --kernel-tree do not apply"
        );
    }
    let all = mutants::load(&harness::layout::patches_dir("6.12").join("mutants"))?;
    let chosen: Vec<&Mutant> = all
        .iter()
        .filter(|m| args.only.is_empty() || args.only.iter().any(|o| o == &m.name))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no mutant selected; known: {}",
            all.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let cells = selection::cells(&sel)?;
    prereqs::ensure(&prereqs::Needs {
        arches: selection::arches_of(&cells),
        debian_source: true,
        guest: true,
        llvm: selection::needs_llvm(&sel),
    })?;
    let source = selection::prepare_source(&sel)?;
    let opts = RunOptions {
        accel: args.accel,
        jobs: selection::jobs(&sel),
        expect_baseline_failures: false,
        guest_params: Vec::new(),
        silence_limit: None,
        stream_console: false,
        gdb_port: None,
        instruction_clock: false,
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    for (arch, config) in &cells {
        let cell = Cell {
            arch,
            config: config.clone(),
            source: &source,
        };
        for m in &chosen {
            let t0 = Instant::now();
            eprintln!(
                "ksh: mutant {} on {}: {}",
                m.name,
                cell.name(),
                m.description
            );
            let restore = Restore(&source);
            mutants::apply(&source.tree, m)?;
            let (report, times) = testrun::run_cell(&cell, &opts)?;
            drop(restore);
            let build_failed = report.cases.iter().find_map(|c| match &c.status {
                Status::Fail(msg) if c.name.ends_with("/build/kernel") => Some(msg.clone()),
                _ => None,
            });
            let failed: Vec<String> = report
                .cases
                .iter()
                .filter(|c| matches!(c.status, Status::Fail(_)))
                .map(|c| {
                    c.name
                        .trim_start_matches(&format!("{}/", cell.name()))
                        .to_string()
                })
                .collect();
            let not_failed: Vec<String> = m
                .must_fail
                .iter()
                .filter(|c| !failed.contains(c))
                .cloned()
                .collect();
            // A build that fails is a broken mutant, unless the mutant is
            // about a check that runs inside the build (`build/...` cases
            // other than build/kernel, such as build/generators-agree) and
            // each of those failed with its own verdict.
            let caught_in_build = !m.must_fail.is_empty()
                && m.must_fail
                    .iter()
                    .all(|c| c.starts_with("build/") && c != "build/kernel" && failed.contains(c));
            let verdict = match build_failed {
                Some(_) if caught_in_build => Verdict::Caught(m.must_fail.clone()),
                Some(msg) => Verdict::Broken(msg.lines().next().unwrap_or("").to_string()),
                None if failed.is_empty() => Verdict::Missed,
                None if !not_failed.is_empty() => Verdict::MissedCases {
                    failed,
                    passed: not_failed,
                },
                None => Verdict::Caught(failed),
            };
            // Keep this mutant's logs beside the cell's run dir.
            let keep = cell
                .run_dir()
                .with_file_name(format!("{}-{}-mutant-{}", arch.name, config, m.name));
            let _ = std::fs::remove_dir_all(&keep);
            let _ = copy_dir(&cell.run_dir(), &keep);
            eprintln!(
                "ksh: mutant {}: {} (build {}, VM {}); logs in {}",
                m.name,
                match &verdict {
                    Verdict::Caught(c) => format!("caught by {}", c.join(", ")),
                    Verdict::Missed => "MISSED".into(),
                    Verdict::MissedCases { passed, .. } =>
                        format!("MISSED: {} did not fail", passed.join(", ")),
                    Verdict::Broken(e) => format!("did not build: {e}"),
                },
                fmt_duration(times.build),
                fmt_duration(times.vm_total),
                keep.display()
            );
            rows.push((cell.name(), (*m).clone(), verdict, t0.elapsed()));
        }
    }
    println!(
        "\nmutants ({} in {}):",
        rows.len(),
        fmt_duration(started.elapsed())
    );
    let (mut caught, mut bad) = (0, 0);
    for (cell, m, v, t) in &rows {
        let what = match v {
            Verdict::Caught(cases) => {
                caught += 1;
                format!("caught   by {}", cases.join(", "))
            }
            Verdict::Missed => {
                bad += 1;
                "MISSED   no case failed: strengthen a probe".into()
            }
            Verdict::MissedCases { failed, passed } => {
                bad += 1;
                format!(
                    "MISSED   {} passed although the mutant is about them (failed: {})",
                    passed.join(", "),
                    failed.join(", ")
                )
            }
            Verdict::Broken(e) => {
                bad += 1;
                format!("BROKEN   the mutant does not build: {e}")
            }
        };
        println!("  {cell} {:<26} {what} ({})", m.name, fmt_duration(*t));
        println!("  {:>w$}   {}", "", m.description, w = cell.len() + 27);
    }
    println!(
        "mutants: {caught} caught, {bad} missed or broken, of {}",
        rows.len()
    );
    Ok(if bad == 0 { 0 } else { 1 })
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}
