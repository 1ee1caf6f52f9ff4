//! `cargo xtask test`: build, boot and probe; report through libtest.
//!
//! Errors come early and stay in their cell: the output path and the filter
//! are checked before any work; a fault inside one cell (its build, its
//! ELF, its boot) fails that cell's cases while the other cells still run;
//! the report is printed and the JUnit file written whatever happened.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::cell::{CellId, Kernel, Status, TestName};
use harness::kernel::prereqs;
use harness::kernel::source::KernelSource;
use harness::process::fmt_duration;
use harness::results::report::{self, CaseResult, CellReport};
use harness::testrun::{self, Cell, CellTimes, RunOptions};
use libtest_mimic::{Arguments, Completion, Trial};

use crate::flags::{KernelSelection, TestArgs};
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
    let source_kind = selection::source_kind(&args.kernel);
    for id in selection::cells(&args.kernel)? {
        let cell_names = testrun::test_names(&id);
        if cell_names.iter().any(|n| report::is_selected(&lt, n)) {
            selected_cells.push(id);
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

    // The cells run inside libtest, each when the first of its selected
    // tests is reached (tests are in cell order, one at a time): results
    // stream per cell, and libtest's "finished in" is the real wall time.
    let runner = Arc::new(Runner {
        kernel: args.kernel.clone(),
        opts: RunOptions {
            accel: args.accel,
            jobs: selection::jobs(&args.kernel),
            expect_baseline_failures: args.expect_baseline_failures,
            guest_params: args.guest_param.clone(),
            silence_limit: args.vm_silence.map(Duration::from_secs),
            stream_console: args.console || args.gdb.gdb,
            gdb_port: args.gdb.port(),
            ..RunOptions::default()
        },
        sources: selection::kernels(&args.kernel)?
            .into_iter()
            .map(|k| (k, OnceLock::new()))
            .collect(),
        cells: selected_cells.clone(),
        results: selected_cells.iter().map(|_| OnceLock::new()).collect(),
    });
    // Only the selected cells' tests become trials: a cell without a
    // selected test has no kernel to judge, and a trial for it could only
    // pass having checked nothing.
    let trials = names
        .iter()
        .filter_map(|name| {
            let test = TestName::parse(name, source_kind)?;
            let i = selected_cells.iter().position(|id| *id == test.cell)?;
            let (runner, name2) = (runner.clone(), name.clone());
            Some(case_trial(&test, move || {
                let (report, _) = runner.cell(i);
                report
                    .cases
                    .iter()
                    .find(|c| c.name == name2)
                    .map(|c| c.status.clone())
            }))
        })
        .collect();
    let started = Instant::now();
    let conclusion = libtest_mimic::run(&lt, trials);
    let done: Vec<&(CellReport, Option<CellTimes>)> =
        runner.results.iter().filter_map(|r| r.get()).collect();
    if !done.is_empty() {
        eprint!("{}", summary_table(&done, started.elapsed()));
    }
    if let Some(path) = args.junit.as_ref().filter(|_| !lt.list) {
        let reports: Vec<CellReport> = done.iter().map(|(r, _)| r.clone()).collect();
        report::write_junit(path, &reports)?;
        eprintln!("ksh: JUnit XML written to {}", path.display());
    }
    if let Some(path) = args.times_json.as_ref().filter(|_| !lt.list) {
        let text = serde_json::to_string_pretty(&times_json(&done))?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if conclusion.has_failed() { 101 } else { 0 })
}

/// A test run builds Debian's source or the user's tree, and boots the guest.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::DebianUnlessTree,
    guest: true,
};

/// The libtest trial of case `name`: `status` gives its result when the
/// trial runs (None: the case has no result).
pub(crate) fn case_trial(
    name: &TestName,
    status: impl FnOnce() -> Option<Status> + Send + 'static,
) -> Trial {
    let trial = Trial::ignorable_test(name.to_string(), move || match status() {
        Some(Status::Pass) => Ok(Completion::Completed),
        // libtest's only "measured" state is for `--bench` runs: a
        // measurement passes, labelled by its kind.
        Some(Status::Measured(_)) => Ok(Completion::Completed),
        Some(Status::Skip(why)) => Ok(Completion::ignored_with(why)),
        Some(s @ (Status::Fail { .. } | Status::NotRun(_))) => {
            Err(s.failure().unwrap_or_default().into())
        }
        None => Err("not run: its kernel was not built or booted".into()),
    });
    if !ksh_proto::is_counted(&name.probe, &name.case) {
        trial.with_kind(report::MEASURED_KIND)
    } else {
        trial
    }
}

/// The selected cells and their results, computed on first use.
struct Runner {
    kernel: KernelSelection,
    opts: RunOptions,
    cells: Vec<CellId>,
    /// Per kernel line, its prerequisites and source: once, for every
    /// cell of the line, when its first cell runs.
    sources: Vec<(Kernel, OnceLock<Result<KernelSource, String>>)>,
    results: Vec<OnceLock<(CellReport, Option<CellTimes>)>>,
}

impl Runner {
    fn cell(&self, i: usize) -> &(CellReport, Option<CellTimes>) {
        self.results[i].get_or_init(|| {
            // libtest printed "test NAME ... " already: start on a new line.
            eprintln!();
            let id = &self.cells[i];
            let source = self
                .sources
                .iter()
                .find(|(k, _)| *k == id.kernel)
                .map(|(_, s)| s.get_or_init(|| self.prepare(id.kernel)));
            match source.expect("every cell's kernel line is selected") {
                Ok(source) => {
                    let cell = Cell::new(id, source);
                    let (r, t) = run_one(&cell, &self.opts);
                    (r, t)
                }
                // Nothing could be built: every selected cell fails with why.
                Err(why) => (
                    failed_cell(&testrun::test_names(id), id, why, Duration::ZERO),
                    None,
                ),
            }
        })
    }

    fn prepare(&self, kernel: Kernel) -> Result<KernelSource, String> {
        let r = (|| -> Result<_> {
            let cells: Vec<CellId> = self
                .cells
                .iter()
                .filter(|c| c.kernel == kernel)
                .cloned()
                .collect();
            NEEDS.ensure(&selection::selected(
                &self.kernel,
                selection::arches_of(&cells),
                kernel,
            ))?;
            selection::prepare_source(&self.kernel, kernel)
        })();
        match r {
            Ok(source) => {
                eprintln!("ksh: kernel source: {}", source.describe);
                Ok(source)
            }
            Err(e) => {
                let why = harness::layout::describe_error(&e);
                eprintln!("ksh: error: {why}");
                Err(why)
            }
        }
    }
}

/// The table that closes a run: per cell, build, boot-to-results, the
/// guest's probe time, and its cases.
pub(crate) fn summary_table(done: &[&(CellReport, Option<CellTimes>)], wall: Duration) -> String {
    let mut rows = vec![[
        "cell".to_string(),
        "build".to_string(),
        "boot-to-results".to_string(),
        "probes".to_string(),
        "cases".to_string(),
    ]];
    for (report, times) in done {
        let (pass, measured, fail, skip) =
            report
                .cases
                .iter()
                .fold((0, 0, 0, 0), |(p, m, f, s), c| match c.status {
                    Status::Pass => (p + 1, m, f, s),
                    Status::Measured(_) => (p, m + 1, f, s),
                    Status::Fail { .. } | Status::NotRun(_) => (p, m, f + 1, s),
                    Status::Skip(_) => (p, m, f, s + 1),
                });
        let dash = || "-".to_string();
        let (build, boot, probes) = match times {
            Some(t) => (
                format!(
                    "{}{}",
                    fmt_duration(t.build),
                    if t.ran_make { "" } else { " (up to date)" }
                ),
                t.boot_to_results.map(fmt_duration).unwrap_or_else(dash),
                t.guest_probes.map(fmt_duration).unwrap_or_else(dash),
            ),
            None => (dash(), dash(), dash()),
        };
        let mut cases = format!("{pass} passed, {fail} failed");
        if measured > 0 {
            cases.push_str(&format!(", {measured} measured (not a check)"));
        }
        if skip > 0 {
            cases.push_str(&format!(", {skip} skipped"));
        }
        rows.push([report.cell.name(), build, boot, probes, cases]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(&format!("ksh: {}\n", line.join("  ").trim_end()));
    }
    out.push_str(&format!("ksh: wall time {}\n", fmt_duration(wall)));
    out
}

/// The figures of every cell that ran (`--times-json`): seconds, `null`
/// where there is no figure (no completion record, no VM).
fn times_json(done: &[&(CellReport, Option<CellTimes>)]) -> serde_json::Value {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let cells: Vec<serde_json::Value> = done
        .iter()
        .filter_map(|(report, times)| {
            let t = times.as_ref()?;
            Some(serde_json::json!({
                "cell": report.cell.name(),
                "build_s": t.build.as_secs_f64(),
                "ran_make": t.ran_make,
                "vm_s": t.vm_total.as_secs_f64(),
                "accel": t.accel,
                "boot_to_results_s": secs(t.boot_to_results),
                "guest_probes_s": secs(t.guest_probes),
            }))
        })
        .collect();
    serde_json::Value::Array(cells)
}

/// Runs one cell and prints its summary line; a harness error becomes the
/// cell's failed cases.
fn run_one(cell: &Cell, opts: &RunOptions) -> (CellReport, Option<CellTimes>) {
    let started = Instant::now();
    let (cell_report, times) = match testrun::run_cell(cell, opts) {
        Ok(r) => r,
        Err(e) => {
            let why = harness::layout::describe_error(&e);
            eprintln!("ksh: {}: error: {why}", cell.name());
            return (
                failed_cell(&cell.test_names(), &cell.id, &why, started.elapsed()),
                None,
            );
        }
    };
    print_cell_lines(&cell_report, &times);
    (cell_report, Some(times))
}

/// The lines that close a cell's run (also `cargo xtask judge`'s): build
/// and VM figures, the items checked per probe, the measurements.
pub(crate) fn print_cell_lines(cell_report: &CellReport, times: &CellTimes) {
    let cell = &cell_report.cell;
    let (build_probe, build_case) = testrun::BUILD_CASE;
    let build_case = TestName::new(cell, build_probe, build_case).to_string();
    let build_failed = cell_report
        .cases
        .iter()
        .any(|c| c.name == build_case && c.status.is_failure());
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
        "ksh: {cell}: {build}, {vm}, boot-to-results {}",
        times
            .boot_to_results
            .map(fmt_duration)
            .unwrap_or_else(|| "-".into()),
    );
    if times.accel.is_some() {
        eprintln!(
            "ksh: {cell}: checked {}",
            testrun::counts_summary(&times.counts, times.baseline_proof)
        );
        for (case, figure) in &times.measured {
            eprintln!("ksh: {cell}: measured, not a check: {case} {figure}");
        }
    }
}

/// A cell whose every case failed with `why`.
fn failed_cell(names: &[String], cell: &CellId, why: &str, elapsed: Duration) -> CellReport {
    CellReport {
        cell: cell.clone(),
        cases: names
            .iter()
            .map(|n| CaseResult {
                name: n.clone(),
                status: Status::NotRun(why.to_string()),
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
