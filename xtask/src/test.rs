//! `cargo xtask test`: build, boot and probe; report through libtest.

use anyhow::Result;
use harness::kbuild::fmt_duration;
use harness::prereqs;
use harness::report::{self, CellReport};
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

    let mut results: Vec<CellReport> = Vec::new();
    if !lt.list && !selected_cells.is_empty() {
        let needed: Vec<_> = selected_cells.iter().map(|(a, _)| *a).collect();
        prereqs::ensure(&prereqs::Needs {
            arches: needed,
            debian_source: args.kernel.kernel_tree.is_none(),
            guest: true,
        })?;
        let source = selection::prepare_source(&args.kernel)?;
        eprintln!("ksh: kernel source: {}", source.describe);
        let opts = RunOptions {
            accel: args.accel,
            jobs: selection::jobs(&args.kernel),
            expect_baseline_failures: args.expect_baseline_failures,
            guest_params: Vec::new(),
        };
        for (arch, config) in &selected_cells {
            let cell = Cell {
                arch,
                config: config.clone(),
                source: &source,
            };
            let (cell_report, times) = testrun::run_cell(&cell, &opts)?;
            eprintln!(
                "ksh: {}: build {}{}, VM {} on {}, boot-to-results {}",
                cell.name(),
                fmt_duration(times.build),
                if times.ran_make { "" } else { " (up to date)" },
                fmt_duration(times.vm_total),
                times.accel.unwrap_or("-"),
                times
                    .boot_to_results
                    .map(fmt_duration)
                    .unwrap_or_else(|| "-".into()),
            );
            eprintln!(
                "ksh: {}: checked {}",
                cell.name(),
                testrun::counts_summary(&times.counts, times.baseline_proof)
            );
            results.push(cell_report);
        }
        if let Some(path) = &args.junit {
            report::write_junit(path, &results)?;
            eprintln!("ksh: JUnit XML written to {}", path.display());
        }
    }
    let conclusion = libtest_mimic::run(&lt, report::trials(&names, &results));
    Ok(if conclusion.has_failed() { 101 } else { 0 })
}
