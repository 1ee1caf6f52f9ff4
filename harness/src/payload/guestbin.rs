//! Building the static guest programs (`ksh-init`) for an arch's musl target.

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::cell::arch::ArchProfile;
use crate::layout;

/// Builds `ksh-init` for `arch` (cargo decides whether anything changed) and
/// returns the binary's path.
pub fn build_init(arch: &ArchProfile) -> Result<PathBuf> {
    let sh = Shell::new()?;
    let root = layout::project_root();
    sh.change_dir(&root);
    let target = arch.rust_target;
    // The guest must not depend on the host's CPU; release keeps it small
    // and fast under TCG.
    cmd!(
        sh,
        "cargo build --quiet --release --package ksh-guest --bin ksh-init --target {target}"
    )
    .quiet()
    .run()
    .with_context(|| format!("building the guest /init for {target}"))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join(target).join("release").join("ksh-init"))
}
