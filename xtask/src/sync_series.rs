//! `cargo xtask sync-series [--kernel 7.3]`: regenerate `patches/<version>`
//! (6.12 by default) with git so that
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
    let kernel = match &args.kernel {
        None => Kernel::V6_12,
        Some(v) => Kernel::parse(v).map_err(|e| anyhow::anyhow!("--kernel: {e}"))?,
    };
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
    Ok(0)
}
