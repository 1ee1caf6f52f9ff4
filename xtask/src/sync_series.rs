//! `cargo xtask sync-series [--kernel 7.3]`: regenerate `patches/<version>`
//! (every line's by default) with git so that
//! the generator patch carries the `kallsyms-gen` crate's sources
//! (`kallsyms-gen/src/*.rs` as `scripts/kallsyms-rs/*.rs`): the crate stays
//! the one source of truth. See `harness::kernel::series::regenerate`.

use std::time::Instant;

use anyhow::Result;
use harness::cell::Kernel;
use harness::kernel::{prereqs, series, source};
use harness::layout;
use harness::process::fmt_duration;

use crate::flags::SyncSeriesArgs;

/// The series is rewritten from the files of Debian's tarball; no kernel is built.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::Debian,
    guest: false,
};

pub fn run(args: SyncSeriesArgs) -> Result<i32> {
    // Both series carry the crate's sources: by default both are rewritten.
    let kernels = if args.kernel.is_empty() {
        Kernel::all().collect()
    } else {
        Kernel::parse_list(&args.kernel).map_err(|e| anyhow::anyhow!("--kernel: {e}"))?
    };
    for kernel in kernels {
        sync(kernel)?;
    }
    Ok(0)
}

/// Rewrites `patches/<kernel>/`.
fn sync(kernel: Kernel) -> Result<()> {
    NEEDS.ensure(&prereqs::Selected {
        kernel,
        ..prereqs::Selected::default()
    })?;
    let dir = layout::patches_dir(kernel.version());
    let crate_src = layout::project_root().join("kallsyms-gen/src");
    let started = Instant::now();
    let (tarball, _) = source::debian_tarball(kernel)?;
    let changed = series::sync_series(&dir, &crate_src, series::Pristine::Tarball(&tarball))?;
    let took = fmt_duration(started.elapsed());
    if changed.is_empty() {
        println!(
            "the series in {} is already what git writes with {} ({took})",
            dir.display(),
            crate_src.display()
        );
    } else {
        println!(
            "rewrote {} patch(es) in {} with git ({took}): {}\nreview with `git diff {}`",
            changed.len(),
            dir.display(),
            changed.join(", "),
            dir.display()
        );
    }
    Ok(())
}
