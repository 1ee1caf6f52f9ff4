//! The guest's initramfs: `/init`, the host-computed expectations and the
//! few nodes the kernel needs before devtmpfs is mounted. Written with our
//! own deterministic cpio writer ([`crate::cpio`]): same inputs, same bytes,
//! and the file is only rewritten when its bytes change.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cpio::CpioBuilder;

/// A file to place in the initramfs.
#[derive(Debug, Clone)]
pub struct GuestFile {
    /// Absolute path in the guest.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Builds the gzip-compressed newc archive for `init` plus `files`.
pub fn build(init: &[u8], files: &[GuestFile]) -> Result<Vec<u8>> {
    let mut cpio = CpioBuilder::new();
    for dir in [
        "/dev",
        "/proc",
        "/sys",
        "/ksh",
        ksh_proto::EXPECT_DIR,
        "/tmp",
    ] {
        cpio.add_dir(dir, 0o755)?;
    }
    // The kernel opens /dev/console for init's stdio before anything is
    // mounted; without the node, init runs with no stdout.
    cpio.add_char_dev("/dev/console", 0o600, 5, 1)?;
    cpio.add_file("/init", 0o755, init.to_vec())?;
    for f in files {
        cpio.add_file(&f.path, f.mode, f.data.clone())?;
    }
    Ok(crate::cpio::gzip(&cpio.finish()?))
}

/// Writes `bytes` to `path` unless it already holds them. Returns whether
/// it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}
