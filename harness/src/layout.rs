//! Where things live on disk: the project checkout and the harness cache.
//!
//! The cache (default `target/ksh/`, override with `KSH_CACHE_DIR`) holds
//! unpacked kernel sources, persistent kernel build dirs, guest binaries and
//! per-run logs. Every path is keyed by what produced it, so two CI matrix
//! cells on one machine never share a build dir, socket or temp file unless
//! they would produce the same bytes.

use std::path::{Path, PathBuf};

/// The project's root (the workspace that holds `kernel-configs/`).
pub fn project_root() -> PathBuf {
    // harness/ is one level below the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness has a parent")
        .to_path_buf()
}

/// Root of the harness cache.
pub fn cache_root() -> PathBuf {
    match std::env::var_os("KSH_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => project_root().join("target").join("ksh"),
    }
}

pub fn kernel_configs_dir() -> PathBuf {
    project_root().join("kernel-configs")
}

pub fn patches_dir(base_version: &str) -> PathBuf {
    project_root().join("patches").join(base_version)
}

/// A short, filesystem-safe hex digest of `parts`, for cache keys.
pub fn digest(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let out = h.finalize();
    out.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Creates `dir` and its parents, with the path in the error.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
}

/// An exclusive advisory lock (flock) held until dropped. Two harness
/// processes that need the same source tree or build dir (two CI cells on
/// one machine) take turns instead of corrupting each other's work.
pub struct DirLock {
    _file: std::fs::File,
}

/// Takes the lock `path` (created if missing), waiting for another holder.
pub fn lock(path: &Path) -> anyhow::Result<DirLock> {
    use std::os::fd::AsRawFd;
    if let Some(parent) = path.parent() {
        ensure_dir(parent)?;
    }
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open lock {}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!(
            "ksh: waiting for another harness process holding {}",
            path.display()
        );
        // SAFETY: as above, now blocking.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            anyhow::bail!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(DirLock { _file: file })
}
