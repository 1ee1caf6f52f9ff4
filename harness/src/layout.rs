//! Where things live on disk: the project checkout and the harness cache.
//!
//! The cache (default `target/ksh/`, override with `KSH_CACHE_DIR`) holds
//! unpacked kernel sources, persistent kernel build dirs, guest binaries and
//! per-run logs. Every path is keyed by what produced it, so two CI matrix
//! cells on one machine never share a build dir, socket or temp file unless
//! they would produce the same bytes.

use std::path::{Path, PathBuf};

/// The project's root (the workspace that holds `kernel-configs/`): the
/// checkout `cargo` ran from, found at run time through the
/// `CARGO_MANIFEST_DIR` cargo sets for `cargo run`/`cargo test` (a binary
/// built in one worktree and run from another must use the other's
/// configs and patches). The compiled-in checkout only outside cargo.
pub fn project_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .and_then(|d| find_root(Path::new(&d)))
            .unwrap_or_else(compiled_root)
    })
    .clone()
}

/// The first of `dir` and its ancestors that looks like this project.
fn find_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join("kernel-configs").is_dir() && d.join("harness/proto").is_dir())
        .map(Path::to_path_buf)
}

fn compiled_root() -> PathBuf {
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

// The cache's names. Every path in the cache is spelled here; the cell's
// own part of a name comes from `cell::CellId`, a source's from
// `cell::SourceKey`.

/// Unpacked and patched kernel sources: `src/<source-key>/`.
pub fn src_root() -> PathBuf {
    src_root_in(&cache_root())
}

/// [`src_root`] of the cache at `cache` (a scratch cache of a fault test).
pub fn src_root_in(cache: &Path) -> PathBuf {
    cache.join("src")
}

/// The lock a source tree `src/<key>/` is prepared under.
pub fn src_lock(key: &str) -> PathBuf {
    src_root().join(format!("{key}.lock"))
}

/// Persistent build dirs: `build/<source-key>/<cell>/`.
pub fn build_root() -> PathBuf {
    cache_root().join("build")
}

/// The build dir `build/<source_key>/<cell_dir>/` (see `CellId::build_dir`).
pub fn build_dir(source_key: &str, cell_dir: &str) -> PathBuf {
    build_root().join(source_key).join(cell_dir)
}

/// The make log in a build dir.
pub fn build_log(build_dir: &Path) -> PathBuf {
    build_dir.join("build.log")
}

/// Prefix of the build dirs kept inside a harness-owned tree. Kbuild uses
/// relative paths (`srctree := ..`) for an `O=` dir that is a direct
/// subdirectory of the source, so every tree's compile commands are the
/// same text and the compiler cache serves one tree's objects to another.
pub const IN_TREE_BUILD_PREFIX: &str = ".ksh-build-";

/// The objects of the cell `cell_dir` inside the harness-owned `tree`.
pub fn in_tree_build_dir(tree: &Path, cell_dir: &str) -> PathBuf {
    tree.join(format!("{IN_TREE_BUILD_PREFIX}{cell_dir}"))
}

/// Whether `name`, an entry of a source tree, is one of its in-tree
/// build dirs.
pub fn is_in_tree_build_dir(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(IN_TREE_BUILD_PREFIX)
}

/// One cell's run dirs: `runs/<source-key>/<cell_dir>/` (see [`new_run_dir`]).
pub fn runs_dir(source_key: &str, cell_dir: &str) -> PathBuf {
    cache_root().join("runs").join(source_key).join(cell_dir)
}

/// The lock the runs of one cell take turns on the VM under.
pub fn runs_lock(runs: &Path) -> PathBuf {
    runs.with_extension("lock")
}

/// The compiler cache shared by every tree.
pub fn ccache_dir() -> PathBuf {
    cache_root().join("ccache")
}

/// Debian's busybox for guests of the Debian arch `debian_arch`.
pub fn busybox_dir(debian_arch: &str) -> PathBuf {
    cache_root().join("busybox").join(debian_arch)
}

/// The private apt configuration and unpacked packages of one Debian
/// suite the machine's own sources lack (`kernel::debian_suite`).
pub fn debian_suite_dir(suite: &str) -> PathBuf {
    cache_root().join("debian").join(suite)
}

/// Whether KVM booted a guest on this host, per arch (`vm::accel`).
pub fn accel_verdicts() -> PathBuf {
    cache_root().join("accel-verdicts.json")
}

/// `cargo xtask bench`'s reports, when no `--json` path is given.
pub fn bench_dir() -> PathBuf {
    cache_root().join("bench")
}

/// The throwaway git history of `cargo xtask bisect-selftest`.
pub fn bisect_demo_dir() -> PathBuf {
    cache_root().join("bisect-demo")
}

/// The step record of the `cargo xtask bisect` of process `pid`.
pub fn bisect_record(pid: u32) -> PathBuf {
    cache_root().join(format!("bisect-{pid}.jsonl"))
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
    lock_as(path, libc::LOCK_EX)
}

/// Takes the lock `path` shared: any number of shared holders, none while
/// another process holds it with [`lock`].
pub fn lock_shared(path: &Path) -> anyhow::Result<DirLock> {
    lock_as(path, libc::LOCK_SH)
}

fn lock_as(path: &Path, how: libc::c_int) -> anyhow::Result<DirLock> {
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
    if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } != 0 {
        eprintln!(
            "ksh: waiting for another harness process holding {}",
            path.display()
        );
        // SAFETY: as above, now blocking.
        if unsafe { libc::flock(file.as_raw_fd(), how) } != 0 {
            anyhow::bail!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(DirLock { _file: file })
}

/// The link in a cell's runs dir that names its most recent run dir.
pub const LATEST_RUN: &str = "latest";

/// Run dirs kept per cell (older ones of finished runs are removed).
const RUNS_KEPT: usize = 10;

/// A fresh run dir `<secs>-<pid>` under `runs` for this invocation, with
/// `runs/latest` pointing at it, so two concurrent runs of one cell never
/// write each other's console log or results. Old run dirs beyond the
/// newest [`RUNS_KEPT`] are removed unless their process still runs.
pub fn new_run_dir(runs: &Path) -> anyhow::Result<PathBuf> {
    ensure_dir(runs)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = format!("{secs}-{}", std::process::id());
    let dir = runs.join(&name);
    // A second cell run by this process in the same second reuses it.
    let _ = std::fs::remove_dir_all(&dir);
    ensure_dir(&dir)?;
    let tmp_link = runs.join(format!(".{LATEST_RUN}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&name, &tmp_link)
        .and_then(|()| std::fs::rename(&tmp_link, runs.join(LATEST_RUN)))
        .map_err(|e| anyhow::anyhow!("cannot link {}/{LATEST_RUN}: {e}", runs.display()))?;
    prune_runs(runs, &name);
    Ok(dir)
}

fn prune_runs(runs: &Path, current: &str) {
    let Ok(rd) = std::fs::read_dir(runs) else {
        return;
    };
    let mut dirs: Vec<(u64, u32, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (secs, pid) = name.split_once('-')?;
            Some((secs.parse().ok()?, pid.parse().ok()?, e.path()))
        })
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(RUNS_KEPT);
    for (_, pid, path) in dirs.into_iter().take(excess) {
        if path.file_name().is_some_and(|n| n != current) && !crate::process::pid_alive(pid) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// `{e:#}`, led by "no space left on device" (and what is free in the
/// cache) when that is what happened somewhere in the chain, so a full
/// disk is never reported as a parse error or a hang.
pub fn describe_error(e: &anyhow::Error) -> String {
    let enospc = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
    });
    if enospc {
        format!(
            "no space left on device ({} free under {}): {e:#}",
            free_space(&cache_root()),
            cache_root().display()
        )
    } else {
        format!("{e:#}")
    }
}

/// Free space of the filesystem holding `p`, for humans.
pub fn free_space(p: &Path) -> String {
    match free_bytes(p) {
        Some(bytes) => format!("{} MiB", bytes / (1024 * 1024)),
        None => "?".into(),
    }
}

/// Bytes available to us on the filesystem holding `p` (or its nearest
/// existing ancestor).
pub fn free_bytes(p: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut probe = p.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            return None;
        }
    }
    let c = std::ffi::CString::new(probe.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we pass; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Size and a hex digest of a file's bytes (streamed).
pub fn file_digest(path: &Path) -> anyhow::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    let out = h.finalize();
    Ok((
        len,
        out.iter().take(16).map(|b| format!("{b:02x}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_as_such() {
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC))
            .context("writing /x/ksh-initramfs.cpio");
        let msg = describe_error(&e);
        assert!(
            msg.starts_with("no space left on device (") && msg.contains("ksh-initramfs"),
            "{msg}"
        );
        let other = anyhow::anyhow!("ELF parse error");
        assert_eq!(describe_error(&other), "ELF parse error");
    }

    #[test]
    fn run_dirs_are_per_invocation_with_a_latest_link() {
        let d = tempfile::tempdir().unwrap();
        let a = new_run_dir(d.path()).unwrap();
        assert!(a.is_dir());
        let latest = std::fs::read_link(d.path().join(LATEST_RUN)).unwrap();
        assert_eq!(d.path().join(latest), a);
        assert!(a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(&format!("-{}", std::process::id())));
    }
}
