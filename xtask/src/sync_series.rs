//! `cargo xtask sync-series`: regenerate `patches/6.12` with git so that
//! the generator patch carries the `kallsyms-gen` crate's sources
//! (`kallsyms-gen/src/*.rs` as `scripts/kallsyms-rs/*.rs`): the crate stays
//! the one source of truth. See `harness::kernel::series::regenerate`.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use harness::kernel::{prereqs, series, source};
use harness::layout;
use harness::process::fmt_duration;

/// The series is rewritten from the files of Debian's tarball; no kernel is built.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::Debian,
    guest: false,
};

pub fn run() -> Result<i32> {
    NEEDS.ensure(&prereqs::Selected::default())?;
    let dir = layout::patches_dir(source::BASE_VERSION);
    let crate_src = layout::project_root().join("kallsyms-gen/src");
    let started = Instant::now();
    let tarball = Path::new(source::DEBIAN_SOURCE_TARBALL);
    let changed = series::sync_series(&dir, &crate_src, series::Pristine::Tarball(tarball))?;
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
