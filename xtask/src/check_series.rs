//! `cargo xtask check-series`: the patch series is upstream-shaped and
//! bisectable. For every patch: `scripts/checkpatch.pl` of the tree itself;
//! for every prefix of the series: a kernel build per architecture. Also
//! checks that the generator sources in the series are `kallsyms-gen`'s,
//! that every patch is what `cargo xtask sync-series` writes, and that the
//! cover letter (`0000-cover-letter.patch`) lists the series as it is.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use harness::cell::{CellId, Kernel};
use harness::kernel::series::{self, Series};
use harness::kernel::{prereqs, source};
use harness::layout;
use harness::process::fmt_duration;
use harness::testrun::{self, Cell};

use crate::flags::CheckSeriesArgs;
use crate::selection;

/// The series is checked on Debian's source; nothing boots.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::Debian,
    guest: false,
};

pub fn run(args: CheckSeriesArgs) -> Result<i32> {
    let mut sel = args.kernel.clone();
    // Both lines carry the series: by default both are checked.
    if sel.kernel_versions.is_empty() && sel.kernel_tree.is_none() {
        sel.kernel_versions = vec!["all".into()];
    }
    let cells = selection::cells_ready(&sel, &NEEDS)?;
    let mut failures = Vec::new();
    for kernel in selection::kernels(&sel)? {
        println!("== Linux {kernel}: patches/{} ==", kernel.version());
        let of_kernel: Vec<CellId> = cells
            .iter()
            .filter(|c| c.kernel == kernel)
            .cloned()
            .collect();
        let failed = check_line(kernel, &of_kernel, &args, selection::jobs(&sel))?;
        failures.extend(failed.into_iter().map(|f| format!("{kernel}: {f}")));
    }
    if failures.is_empty() {
        println!("series OK");
        Ok(0)
    } else {
        println!("series FAILED: {}", failures.join("; "));
        Ok(1)
    }
}

/// Checks the series of `kernel`, building its prefixes in `cells`;
/// returns what failed.
fn check_line(
    kernel: Kernel,
    cells: &[CellId],
    args: &CheckSeriesArgs,
    jobs: usize,
) -> Result<Vec<String>> {
    let series_dir = layout::patches_dir(kernel.version());
    let series = Series::load(&series_dir)?;
    let mut failures = Vec::new();

    let crate_src = layout::project_root().join("kallsyms-gen/src");
    match series::generator_drift(&series_dir, &crate_src) {
        Ok(()) => println!(
            "generator: {}/*.rs match {}",
            series::GENERATOR_DIR,
            crate_src.display()
        ),
        Err(e) => {
            println!("generator: DRIFT: {e:#}");
            failures.push("generator drift".to_string());
        }
    }
    let (tarball, _) = source::debian_tarball(kernel)?;
    match series::series_is_regenerated(
        &series_dir,
        &crate_src,
        series::Pristine::Tarball(&tarball),
    ) {
        Ok(()) => println!("series: every patch is what `cargo xtask sync-series` writes"),
        Err(e) => {
            println!("series: NOT REGENERATED: {e:#}");
            failures.push("series not regenerated".to_string());
        }
    }

    match series::cover_letter_is_current(&series) {
        Ok(()) => println!(
            "cover letter: {} lists the {} patches",
            series::COVER_LETTER,
            series.entries.len()
        ),
        Err(e) => {
            println!("cover letter: OUT OF DATE: {e:#}");
            failures.push("cover letter".to_string());
        }
    }

    // checkpatch runs from a tree with the whole series (any tree of this
    // version has the same script).
    let full = source::prepare_series_prefix(kernel, series.entries.len())?;
    for e in &series.entries {
        let out = Command::new("perl")
            .current_dir(&full.tree)
            .args(["scripts/checkpatch.pl", "--no-tree", "--show-types"])
            .arg(&e.path)
            .output()
            .context("running scripts/checkpatch.pl")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.starts_with("total:"))
            .unwrap_or("no summary")
            .to_string();
        let errors = summary
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        println!("checkpatch {}: {summary}", e.file);
        if errors > 0 {
            failures.push(format!("checkpatch errors in {}", e.file));
            for l in text.lines().filter(|l| l.starts_with("ERROR")).take(10) {
                println!("    {l}");
            }
        }
    }

    let prefixes = if args.no_build {
        println!("prefix builds: skipped (--no-build)");
        0
    } else {
        series.entries.len()
    };
    for count in 1..=prefixes {
        let src = source::prepare_series_prefix(kernel, count)?;
        let last = &series.entries[count - 1].file;
        for id in cells {
            let cell = Cell::new(id, &src);
            let started = Instant::now();
            match testrun::build_kernel(&cell, jobs) {
                Ok(_) => println!(
                    "prefix {count} ({last}) {}: builds ({})",
                    cell.name(),
                    fmt_duration(started.elapsed())
                ),
                Err(e) => {
                    println!(
                        "prefix {count} ({last}) {}: BUILD FAILED\n{e:#}",
                        cell.name()
                    );
                    failures.push(format!("prefix {count} on {}", cell.name()));
                }
            }
        }
    }
    if failures.is_empty() {
        println!("series OK: {} patches", series.entries.len());
    }
    Ok(failures)
}
