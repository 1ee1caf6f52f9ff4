//! Kernel source trees: Debian's source package of a supported kernel line
//! (`cell::KERNELS`: `linux-source-6.12` from the machine's suite,
//! `linux-source-7.3` from trixie-backports through a private apt)
//! unpacked into the cache with the line's patch series applied, or a
//! user's own tree used as it is.
//!
//! A cached tree is kept per (source version, variant) and re-synced in place
//! when the series changes, so incremental builds survive patch edits: the
//! tarball restores its own (old) mtimes, and every file touched by the old or
//! the new series is stamped "now" so `make` rebuilds exactly what changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cell::kernel::DebianSuite;
use crate::cell::{Kernel, SourceKey, SourceKind};
use crate::kernel::series::{Series, Variant};
use crate::layout;

/// Where Debian's tarball of `kernel` is: installed by `apt-get install`
/// (the machine's suite, `kernel::prereqs`) or fetched into the cache
/// (a private suite, `kernel::debian_suite`), with the package's version.
pub fn debian_tarball(kernel: Kernel) -> Result<(PathBuf, String)> {
    let line = kernel.line();
    match line.suite {
        DebianSuite::Machine => {
            let tarball = kernel.tarball_in(Path::new("/"));
            Ok((
                tarball.clone(),
                machine_package_version(line.package, &tarball)?,
            ))
        }
        DebianSuite::Private(suite) => {
            let got =
                crate::kernel::debian_suite::ensure(crate::kernel::debian_suite::SuitePackage {
                    package: line.package,
                    suite,
                })?;
            let tarball = kernel.tarball_in(&got.root);
            if !tarball.is_file() {
                bail!(
                    "{} {} has no {}",
                    line.package,
                    got.version,
                    tarball.display()
                );
            }
            Ok((tarball, got.version))
        }
    }
}

/// Where the kernel source comes from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Debian's tarball of `kernel` plus its series `patches/<version>/`
    /// (all of it, or the baseline part).
    Debian { kernel: Kernel, variant: Variant },
    /// A user's tree, never modified.
    Tree(PathBuf),
}

/// A kernel tree ready to build.
#[derive(Debug, Clone)]
pub struct KernelSource {
    pub tree: PathBuf,
    /// Names the source in the cache (`6.12.117-patched`, `tree-ab12cd34`).
    pub key: SourceKey,
    /// One line for humans: where the tree came from.
    pub describe: String,
    /// The kernel line: Debian's package's, or a user tree's `Makefile`'s.
    pub kernel: Kernel,
    /// Whether the kallsyms patches are in (false for baseline; unknown
    /// trees count as patched).
    pub patched: bool,
    /// Whether the tree is Debian's source with the whole series (the
    /// patched tree, with or without a mutant): every option of
    /// `kernel-configs/series.config` must be declared there, and one that
    /// is not is a build error (`kconfig::excuse_undeclared`). False for
    /// the baseline, a series prefix and a user's tree, which may lack them.
    pub whole_series: bool,
    /// Whether build dirs live inside the tree (`<tree>/.ksh-build-<cell>`,
    /// see `kbuild::BuildRequest::object_dir`). True for the harness's own
    /// trees; a user's tree is never written to.
    pub objects_in_tree: bool,
}

/// A file that marks a `--kernel-tree` as made by the harness (the bisect
/// selftest's throwaway history): its build dirs may live inside it, so its
/// first build reuses the compiler results of the cached Debian trees.
pub const OWNED_TREE_MARKER: &str = ".ksh-owned-tree";

/// The kernel line of a user's `tree`, from its top `Makefile`; an
/// error names the tree, the version found and the supported ones.
pub fn tree_kernel(tree: &Path) -> Result<Kernel> {
    let makefile = fs::read_to_string(tree.join("Makefile")).with_context(|| {
        format!(
            "--kernel-tree {}: not a Linux source tree (cannot read its Makefile)",
            tree.display()
        )
    })?;
    Kernel::of_makefile(&makefile)
        .map_err(|e| anyhow::anyhow!("--kernel-tree {}: {e}", tree.display()))
}

/// Makes the source for `spec` ready and returns where it is.
pub fn prepare(spec: &SourceSpec) -> Result<KernelSource> {
    match spec {
        SourceSpec::Tree(path) => {
            let tree = path
                .canonicalize()
                .with_context(|| format!("--kernel-tree {}: no such directory", path.display()))?;
            if !tree.join("Makefile").is_file() || !tree.join("kernel/kallsyms.c").is_file() {
                bail!(
                    "--kernel-tree {}: not a Linux source tree (no Makefile or kernel/kallsyms.c)",
                    tree.display()
                );
            }
            let kernel = tree_kernel(&tree)?;
            let key = SourceKey {
                kind: SourceKind::UserTree,
                tag: layout::digest(&[tree.as_os_str().as_encoded_bytes()]),
            };
            Ok(KernelSource {
                kernel,
                describe: format!("user tree {}", tree.display()),
                key,
                patched: true,
                whole_series: false,
                objects_in_tree: tree.join(OWNED_TREE_MARKER).is_file(),
                tree,
            })
        }
        SourceSpec::Debian { kernel, variant } => {
            let kernel = *kernel;
            let dir = layout::patches_dir(kernel.version());
            if !dir.join("series").is_file() {
                bail!(
                    "no patch series for Linux {kernel}: {} is missing",
                    dir.join("series").display()
                );
            }
            let series = Series::load(&dir)?;
            let kind = match variant {
                Variant::Patched => SourceKind::Patched,
                Variant::Baseline => SourceKind::Baseline,
            };
            prepare_debian(kernel, &series, *variant, kind)
        }
    }
}

/// Debian's source with only the first `count` patches of the series, for
/// checking that every prefix builds. One tree serves every prefix: it is
/// re-synced in place, so each step rebuilds only what the next patch touched.
pub fn prepare_series_prefix(kernel: Kernel, count: usize) -> Result<KernelSource> {
    let mut series = Series::load(&layout::patches_dir(kernel.version()))?;
    let whole = count >= series.entries.len();
    series.entries.truncate(count);
    let mut source = prepare_debian(kernel, &series, Variant::Patched, SourceKind::SeriesPrefix)?;
    source.whole_series = whole;
    Ok(source)
}

/// The Debian package version of an installed tarball (`6.12.117-1~deb12u1`),
/// or the tarball's size and mtime when dpkg does not know it.
fn machine_package_version(package: &str, tarball: &Path) -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output();
    if let Ok(o) = out {
        let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && !v.is_empty() {
            return Ok(v);
        }
    }
    let md = fs::metadata(tarball).with_context(|| {
        format!(
            "{} is missing: apt-get install {package}",
            tarball.display()
        )
    })?;
    let mtime = md
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    Ok(format!("tarball-{}-{}", md.len(), mtime))
}

const STAMP: &str = ".ksh-source-stamp";

/// A digest of the Kconfig files the series applied to a harness-owned
/// `tree` touches ("" for a tree without the harness's stamp): the
/// options a configured build dir may set change with it. The prefixes
/// of a series share one tree and key, and a prefix that declares an
/// option (0009's `KALLSYMS_RUST_GENERATOR`) must be configured again,
/// not built with the previous prefix's `.config`.
pub fn series_kconfig_digest(tree: &Path) -> String {
    let Ok(stamp) = fs::read_to_string(tree.join(STAMP)) else {
        return String::new();
    };
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for path in stamp.lines().skip(1) {
        let is_kconfig = Path::new(path)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("Kconfig"));
        if is_kconfig {
            parts.push(path.as_bytes().to_vec());
            parts.push(fs::read(tree.join(path)).unwrap_or_default());
        }
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    layout::digest(&refs)
}

fn prepare_debian(
    kernel: Kernel,
    series: &Series,
    variant: Variant,
    kind: SourceKind,
) -> Result<KernelSource> {
    let variant_name = kind.name();
    let (tarball, package_version) = debian_tarball(kernel)?;
    let tarball_text = tarball.display().to_string();
    let key = SourceKey {
        kind,
        tag: package_version.replace(['~', ':', '/'], "_"),
    };
    let version = &key.tag;
    let series_dir = &series.dir;
    let fingerprint = series.fingerprint(variant)?;
    let touched: Vec<String> = series.touched_paths(variant)?.into_iter().collect();
    let src_root = layout::src_root();
    layout::ensure_dir(&src_root)?;
    let tree = src_root.join(key.to_string());
    let _lock = layout::lock(&layout::src_lock(&key.to_string()))?;
    remove_stale_staging(&src_root);
    let stamp_path = tree.join(STAMP);
    let want_stamp = format!("{fingerprint}\n{}\n", touched.join("\n"));
    let describe = format!(
        "Debian {} {version} + {} patch(es) of {} ({variant_name})",
        kernel.line().package,
        series.patches_for(variant).len(),
        series_dir.display()
    );
    let source = KernelSource {
        kernel,
        tree: tree.clone(),
        key,
        describe,
        patched: variant == Variant::Patched,
        whole_series: variant == Variant::Patched,
        objects_in_tree: true,
    };
    // A mutant left applied (an interrupted `cargo xtask mutants`) is
    // reverted; if that fails the tree is unpacked again.
    let mut old_stamp = fs::read_to_string(&stamp_path).ok();
    match crate::kernel::mutants::revert(&tree) {
        Ok(true) => eprintln!("ksh: reverted a mutant left applied in {}", tree.display()),
        Ok(false) => {}
        Err(e) => {
            eprintln!("ksh: {e:#}; unpacking the tree again");
            old_stamp = None;
        }
    }
    if old_stamp.as_deref() == Some(want_stamp.as_str()) {
        return Ok(source);
    }
    eprintln!(
        "ksh: unpacking {tarball_text} ({variant_name}) into {}",
        tree.display()
    );
    // Unpack and patch beside the final place, then swap, so an interrupted
    // run never leaves a half-patched tree that looks ready.
    let staging = src_root.join(format!(".{}.staging-{}", source.key, std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    layout::ensure_dir(&staging)?;
    // Ctrl-C while unpacking or patching removes the staging dir.
    let staging_for_cleanup = staging.clone();
    let _cleanup = crate::process::cleanup_while(Box::new(move || {
        let _ = fs::remove_dir_all(&staging_for_cleanup);
    }));
    // Any error from here on removes it too (a read-only old tree, a
    // patch that does not apply): 1.7 GB must not stay behind.
    let mut staging_guard = RemoveOnDrop(Some(staging.clone()));
    let mut tar = Command::new("tar");
    tar.arg("-xJf")
        .arg(&tarball)
        .args(["--strip-components=1", "-C"])
        .arg(&staging);
    // tar dies with the harness; its xz then dies on the broken pipe.
    crate::process::die_with_parent(&mut tar, libc::SIGTERM);
    let mut child = tar.spawn().context("running tar")?;
    let status = {
        let _live = crate::process::register_live(child.id(), libc::SIGTERM);
        child.wait().context("running tar")?
    };
    if !status.success() {
        let _ = fs::remove_dir_all(&staging);
        bail!("unpacking {tarball_text} failed ({status}); reproduce: tar -xJf {tarball_text}");
    }
    if let Err(e) = series.apply(&staging, variant) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e.context(format!(
            "applying {} to Debian's {} source",
            series_dir.display(),
            kernel.version()
        )));
    }
    // Stamp files the old or the new series touched, so make notices content
    // that went back to the tarball's (older) version too.
    let mut stamp_these = touched.clone();
    if let Some(old) = &old_stamp {
        stamp_these.extend(old.lines().skip(1).map(str::to_string));
    }
    let now = fs::FileTimes::new().set_modified(std::time::SystemTime::now());
    for f in stamp_these {
        if let Ok(file) = fs::File::options().write(true).open(staging.join(&f)) {
            let _ = file.set_times(now);
        }
    }
    fs::write(staging.join(STAMP), &want_stamp)?;
    // The build dirs inside the old tree move into the new one: a re-sync
    // rebuilds what the series changed, not the whole kernel.
    let mut moved = Vec::new();
    if let Ok(rd) = fs::read_dir(&tree) {
        for e in rd.flatten() {
            if layout::is_in_tree_build_dir(&e.file_name()) {
                fs::rename(e.path(), staging.join(e.file_name())).with_context(|| {
                    format!(
                        "moving build dir {} into the re-synced tree",
                        e.path().display()
                    )
                })?;
                moved.push(e.file_name());
            }
        }
    }
    if tree.exists() {
        if let Err(e) = fs::remove_dir_all(&tree) {
            // Put the build dirs back before the staging dir goes.
            for name in &moved {
                let _ = fs::rename(staging.join(name), tree.join(name));
            }
            return Err(anyhow::Error::new(e).context(format!(
                "removing the old source tree {} to replace it (is it read-only?); the new one was not kept",
                tree.display()
            )));
        }
    }
    fs::rename(&staging, &tree)
        .with_context(|| format!("moving {} into place", staging.display()))?;
    staging_guard.0 = None;
    Ok(source)
}

/// Removes a directory when dropped, unless disarmed (`.0 = None`).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Removes staging dirs (`.KEY.staging-PID`) left by harness processes that
/// were killed while unpacking; called under the tree's lock.
pub fn remove_stale_staging(src_root: &Path) {
    let Ok(rd) = fs::read_dir(src_root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((_, pid)) = name.rsplit_once(".staging-") else {
            continue;
        };
        if let Ok(pid) = pid.parse::<u32>() {
            if pid != std::process::id() && !crate::process::pid_alive(pid) {
                eprintln!(
                    "ksh: removing {} (left by process {pid}, which no longer runs)",
                    e.path().display()
                );
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Reads `VERSION.PATCHLEVEL.SUBLEVEL` from a tree's Makefile.
pub fn kernel_version(tree: &Path) -> Result<String> {
    let text = fs::read_to_string(tree.join("Makefile"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.trim_start().strip_prefix('='))
            })
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    Ok(format!(
        "{}.{}.{}",
        field("VERSION"),
        field("PATCHLEVEL"),
        field("SUBLEVEL")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kconfig_digest_follows_the_series_kconfig_files_only() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        assert_eq!(series_kconfig_digest(t), "");
        fs::create_dir_all(t.join("init")).unwrap();
        fs::create_dir_all(t.join("kernel")).unwrap();
        fs::write(
            t.join(STAMP),
            "fingerprint\ninit/Kconfig\nkernel/kallsyms.c\n",
        )
        .unwrap();
        fs::write(t.join("init/Kconfig"), "config A\n").unwrap();
        fs::write(t.join("kernel/kallsyms.c"), "int a;\n").unwrap();
        let before = series_kconfig_digest(t);
        fs::write(t.join("kernel/kallsyms.c"), "int b;\n").unwrap();
        assert_eq!(series_kconfig_digest(t), before);
        fs::write(t.join("init/Kconfig"), "config A\nconfig B\n").unwrap();
        assert_ne!(series_kconfig_digest(t), before);
    }
}
