//! `cargo xtask test`: build, boot and probe; report through libtest.
//!
//! Errors come early and stay in their cell: the output path and the filter
//! are checked before any work; a fault inside one cell (its build, its
//! ELF, its boot) fails that cell's cases while the other cells still run;
//! the report is printed and the JUnit file written whatever happened.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::prereqs;
use harness::proc::fmt_duration;
use harness::report::{self, CaseResult, CellReport, Status};
use harness::testrun::{self, Cell, RunOptions};
use libtest_mimic::Arguments;

use crate::flags::TestArgs;
use crate::selection;

pub fn run(mut args: TestArgs) -> Result<i32> {
    if args.expect_baseline_failures {
        args.kernel.baseline = true;
    }
    let mut lt_argv = vec!["cargo xtask test".to_string()];
    lt_argv.extend(args.libtest.iter().cloned());
    let mut lt = Arguments::from_iter(lt_argv);
    // One VM per cell already runs in parallel with nothing; the trials only
    // report finished results, so run them in order for a readable log.
    lt.test_threads = Some(1);

    if let Some(path) = &args.junit {
        check_output_path(path)?;
    }

    // Names are known before anything is built: the list and the filter
    // need no kernel.
    let mut names = Vec::new();
    let mut selected_cells = Vec::new();
    for (arch, config) in selection::cells(&args.kernel)? {
        let cell_names = testrun::test_names(arch, &config);
        if cell_names.iter().any(|n| report::is_selected(&lt, n)) {
            selected_cells.push((arch, config));
        }
        names.extend(cell_names);
    }
    if !lt.list && selected_cells.is_empty() && !args.allow_no_tests {
        bail!(
            "the filter {:?} selects none of the {} tests (`cargo xtask test -- --list` lists them; --allow-no-tests accepts an empty selection)",
            args.libtest,
            names.len()
        );
    }

    let mut results: Vec<CellReport> = Vec::new();
    if !lt.list && !selected_cells.is_empty() {
        let started = Instant::now();
        let prepared = (|| -> Result<_> {
            let needed: Vec<_> = selected_cells.iter().map(|(a, _)| *a).collect();
            prereqs::ensure(&prereqs::Needs {
                arches: needed,
                debian_source: args.kernel.kernel_tree.is_none(),
                guest: true,
            })?;
            selection::prepare_source(&args.kernel)
        })();
        match prepared {
            Ok(source) => {
                eprintln!("ksh: kernel source: {}", source.describe);
                let opts = RunOptions {
                    accel: args.accel,
                    jobs: selection::jobs(&args.kernel),
                    expect_baseline_failures: args.expect_baseline_failures,
                    guest_params: args.guest_param.clone(),
                    silence_limit: args.vm_silence.map(Duration::from_secs),
                    stream_console: args.console,
                    gdb_port: args.gdb.then_some(args.gdb_port),
                };
                for (arch, config) in &selected_cells {
                    let cell = Cell {
                        arch,
                        config: config.clone(),
                        source: &source,
                    };
                    results.push(run_one(&cell, &opts));
                }
            }
            // Nothing could be built: every selected cell fails with why.
            Err(e) => {
                let why = harness::layout::describe_error(&e);
                eprintln!("ksh: error: {why}");
                for (arch, config) in &selected_cells {
                    results.push(failed_cell(
                        &testrun::test_names(arch, config),
                        &format!("{}/{config}", arch.name),
                        &why,
                        started.elapsed(),
                    ));
                }
            }
        }
        if let Some(path) = &args.junit {
            report::write_junit(path, &results)?;
            eprintln!("ksh: JUnit XML written to {}", path.display());
        }
    }
    let conclusion = libtest_mimic::run(&lt, report::trials(&names, &results));
    Ok(if conclusion.has_failed() { 101 } else { 0 })
}

/// Runs one cell and prints its summary line; a harness error becomes the
/// cell's failed cases.
fn run_one(cell: &Cell, opts: &RunOptions) -> CellReport {
    let started = Instant::now();
    let (cell_report, times) = match testrun::run_cell(cell, opts) {
        Ok(r) => r,
        Err(e) => {
            let why = harness::layout::describe_error(&e);
            eprintln!("ksh: {}: error: {why}", cell.name());
            return failed_cell(&cell.test_names(), &cell.name(), &why, started.elapsed());
        }
    };
    let build_case = format!(
        "{}/{}/{}",
        cell.name(),
        testrun::BUILD_CASE.0,
        testrun::BUILD_CASE.1
    );
    let build_failed = cell_report
        .cases
        .iter()
        .any(|c| c.name == build_case && matches!(c.status, Status::Fail(_)));
    let build = if build_failed {
        format!(
            "build FAILED after {}",
            fmt_duration(times.build.max(cell_report.elapsed))
        )
    } else {
        format!(
            "build {}{}",
            fmt_duration(times.build),
            if times.ran_make { "" } else { " (up to date)" }
        )
    };
    let vm = match times.accel {
        Some(accel) => format!("VM {} on {accel}", fmt_duration(times.vm_total)),
        None => "no VM".to_string(),
    };
    eprintln!(
        "ksh: {}: {build}, {vm}, boot-to-results {}",
        cell.name(),
        times
            .boot_to_results
            .map(fmt_duration)
            .unwrap_or_else(|| "-".into()),
    );
    if times.accel.is_some() {
        eprintln!(
            "ksh: {}: checked {}",
            cell.name(),
            testrun::counts_summary(&times.counts, times.baseline_proof)
        );
    }
    cell_report
}

/// A cell whose every case failed with `why`.
fn failed_cell(names: &[String], cell: &str, why: &str, elapsed: Duration) -> CellReport {
    CellReport {
        cell: cell.to_string(),
        cases: names
            .iter()
            .map(|n| CaseResult {
                name: n.clone(),
                status: Status::Fail(format!("not run: {why}")),
            })
            .collect(),
        elapsed,
    }
}

/// Fails now, before any build, if `path` cannot be written.
fn check_output_path(path: &std::path::Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "--junit {}: the directory {} does not exist",
            path.display(),
            parent.display()
        );
    }
    if path.is_dir() {
        bail!("--junit {}: is a directory", path.display());
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("--junit {}: cannot write it", path.display()))?;
    Ok(())
}
