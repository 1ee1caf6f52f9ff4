//! `cargo xtask judge RUN_DIR`: judges a saved run again (as `kunit.py
//! parse` does). The run dir keeps what the judge needs
//! (`harness::results::run_record`); the same pure judge that judged the
//! run gives the verdicts, printed as `test` printed them: the cell's
//! lines, one libtest line per case, the closing table; the exit status
//! is `test`'s (101 when a case fails).

use std::time::Instant;

use anyhow::{Context, Result};
use harness::cell::TestName;
use harness::results::judge;
use harness::results::report::CellReport;
use harness::results::run_record;
use harness::testrun;
use libtest_mimic::Arguments;

use crate::flags::JudgeArgs;
use crate::mutants::verdict_line;
use crate::test::{case_trial, print_cell_lines, summary_table};

pub fn run(args: JudgeArgs) -> Result<i32> {
    let started = Instant::now();
    let (input, texts) = run_record::load(&args.run_dir)?;
    let judged = judge::judge(&input, &texts);
    let times = testrun::cell_times(&input, &texts, &judged);
    let report = CellReport {
        cell: input.cell.id.clone(),
        cases: judged.cases,
        elapsed: times.build + times.vm_total,
    };
    let mode = match &input.mode {
        judge::Mode::Normal => "as a test run".to_string(),
        judge::Mode::BaselineProof => "as the baseline proof".to_string(),
        judge::Mode::Mutant(m) => format!("as mutant {}", m.name),
    };
    eprintln!(
        "ksh: judging {} ({}, {mode})",
        args.run_dir.display(),
        report.cell
    );
    print_cell_lines(&report, &times);
    if let Some(v) = &times.mutant {
        eprintln!("ksh: {}: mutant: {}", report.cell, verdict_line(v));
    }
    let mut lt_argv = vec!["cargo xtask judge".to_string()];
    lt_argv.extend(args.libtest.iter().cloned());
    let mut lt = Arguments::from_iter(lt_argv);
    lt.test_threads = Some(1);
    let trials = report
        .cases
        .iter()
        .map(|c| {
            let status = c.status.clone();
            let name = TestName::parse(&c.name, report.cell.source)
                .with_context(|| format!("{}: not a test name", c.name))?;
            Ok(case_trial(&name, move || Some(status)))
        })
        .collect::<Result<_>>()?;
    let conclusion = libtest_mimic::run(&lt, trials);
    eprint!(
        "{}",
        summary_table(&[&(report, Some(times))], started.elapsed())
    );
    Ok(if conclusion.has_failed() { 101 } else { 0 })
}
