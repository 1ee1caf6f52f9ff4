//! `cargo xtask mutants`: the harness proves its own sensitivity. Each
//! known-bad kernel of the selected kernel line (`--kernel K`, one line
//! per run, mainline by default: `patches/K/mutants/`, planted in K's
//! patched tree) is built incrementally in the patched build dir and
//! tested with every probe. A mutant is *caught* only by its own cases:
//! the kernel built and the VM completed (or crashed as the mutant
//! declares), and every case of its `must-fail:` lines failed with its own
//! verdict, a probe case with its count line (N > 0 of M mismatched),
//! never as "not run" (see `harness::results::judge::mutant`). A mutant
//! whose cases passed is *missed*; one that does not apply, does not
//! build, crashes or hangs where it should not, or whose cases failed
//! some other way is *broken*. Either fails the command. The tree is put
//! back to the series when it ends, also on error.

use std::time::Instant;

use anyhow::{bail, Result};
use harness::cell::{Status, TestName};
use harness::kernel::mutants::{self, Mutant};
use harness::kernel::prereqs;
use harness::kernel::source::KernelSource;
use harness::process::fmt_duration;
use harness::results::judge::{Mode, Verdict};
use harness::testrun::{self, Cell, RunOptions};

use crate::flags::MutantsArgs;
use crate::selection;

/// Mutants patch Debian's patched tree, and boot the guest.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::Debian,
    guest: true,
};

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
    // The kernel line picks the series the mutants sit on, so their dir.
    let kernel = selection::kernel(&sel)?;
    let dir_name = mutants::dir_name(kernel);
    let all = mutants::load_for(kernel)?;
    let known = || {
        all.iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !all.iter().any(|m| &m.name == *o))
    {
        bail!(
            "--only {unknown}: no such mutant in {dir_name}; known: {}",
            known()
        );
    }
    let chosen: Vec<&Mutant> = all
        .iter()
        .filter(|m| args.only.is_empty() || args.only.iter().any(|o| o == &m.name))
        .collect();
    if chosen.is_empty() {
        bail!("no mutant selected in {dir_name}; known: {}", known());
    }
    let cells = selection::cells_ready(&sel, &NEEDS)?;
    let source = selection::prepare_source(&sel, kernel)?;
    let opts = RunOptions {
        accel: args.accel,
        jobs: selection::jobs(&sel),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    for id in &cells {
        let cell = Cell::new(id, &source);
        let arch = cell.id.arch;
        for m in &chosen {
            let t0 = Instant::now();
            if m.cases_on(arch.name).is_empty() {
                eprintln!(
                    "ksh: mutant {}: not for {} (its must-fail cases are for {})",
                    m.name,
                    arch.name,
                    m.must_fail_on
                        .iter()
                        .map(|(c, a)| format!("{c}@{a}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                continue;
            }
            eprintln!(
                "ksh: mutant {} on {}: {}",
                m.name,
                cell.name(),
                m.description
            );
            // No other process builds from the tree while it is mutated.
            let _hold = mutants::hold_tree(&source.tree)?;
            let restore = Restore(&source);
            if let Err(e) = mutants::apply(&source.tree, m) {
                drop(restore);
                let verdict = Verdict::Broken(format!("{e:#}"));
                eprintln!("ksh: mutant {}: BROKEN: {e:#}", m.name);
                rows.push((cell.name(), (*m).clone(), verdict, Vec::new(), t0.elapsed()));
                continue;
            }
            let (report, times) =
                testrun::run_cell_as(&cell, &opts, Mode::Mutant(m.rule(arch.name)))?;
            drop(restore);
            let verdict = times
                .mutant
                .clone()
                .expect("a cell judged as a mutant has the mutant's verdict");
            // What else failed (judged, not "not run"): for the record.
            let also: Vec<String> = report
                .cases
                .iter()
                .filter(|c| matches!(c.status, Status::Fail { .. }))
                .filter_map(|c| TestName::parse(&c.name, cell.id.source))
                .map(|t| t.probe_case())
                .filter(|c| !m.cases_on(arch.name).contains(c))
                .collect();
            // Keep this mutant's logs beside the cell's run dir.
            let keep = cell.id.mutant_run_dir(&source.key, &m.name);
            let _ = std::fs::remove_dir_all(&keep);
            let _ = copy_dir(&cell.run_dir(), &keep);
            eprintln!(
                "ksh: mutant {}: {} (build {}, VM {}); logs in {}",
                m.name,
                verdict_line(&verdict),
                fmt_duration(times.build),
                fmt_duration(times.vm_total),
                keep.display()
            );
            rows.push((cell.name(), (*m).clone(), verdict, also, t0.elapsed()));
        }
    }
    println!(
        "\nmutants of {dir_name} ({} in {}):",
        rows.len(),
        fmt_duration(started.elapsed())
    );
    let (mut caught, mut missed, mut broken) = (0, 0, 0);
    for (cell, m, v, also, t) in &rows {
        let what = match v {
            Verdict::Caught(cases) => {
                caught += 1;
                format!("caught   by {}", cases.join(", "))
            }
            Verdict::Missed(why) => {
                missed += 1;
                format!("MISSED   {}: strengthen a probe", why.join("; "))
            }
            Verdict::Broken(e) => {
                broken += 1;
                format!("BROKEN   {}", e.lines().collect::<Vec<_>>().join(" | "))
            }
        };
        println!("  {cell} {:<26} {what} ({})", m.name, fmt_duration(*t));
        let w = cell.len() + 27;
        println!("  {:>w$}   {}", "", m.description);
        if !also.is_empty() {
            println!("  {:>w$}   also failed: {}", "", also.join(", "));
        }
    }
    println!(
        "mutants: {caught} caught, {missed} missed, {broken} broken, of {}",
        rows.len()
    );
    Ok(if caught == rows.len() { 0 } else { 1 })
}

/// A mutant's verdict on one line.
pub(crate) fn verdict_line(v: &Verdict) -> String {
    match v {
        Verdict::Caught(c) => format!("caught by {}", c.join(", ")),
        Verdict::Missed(why) => format!("MISSED: {}", why.join("; ")),
        Verdict::Broken(e) => format!("BROKEN: {e}"),
    }
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
