//! The probe kernel module (`harness/probe-module/ksh_probe.c`): built out
//! of tree against a finished kernel build dir and shipped in the initramfs,
//! where `/init` loads it. It answers kallsyms lookups through debugfs with
//! the kernel's own code (see the comment at the top of the C file).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::cell::arch::ArchProfile;
use crate::kernel::kbuild::Built;
use crate::process::shell_line;

/// Name of the module (and of its `.ko` file without the extension).
pub const MODULE_NAME: &str = "ksh_probe";

/// The module's sources in this repository.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("probe-module")
}

/// Where the module is built: a directory inside the kernel build dir.
pub fn build_dir(built: &Built) -> PathBuf {
    built.dir.join("ksh-probe-module")
}

/// The built module (`ksh_probe.ko`) of the kernel `built`.
pub fn ko_path(built: &Built) -> PathBuf {
    build_dir(built).join(format!("{MODULE_NAME}.ko"))
}

/// Copies `src/*` to `dst/` where the contents differ (unchanged files keep
/// their mtime, so `make` does not rebuild them).
fn sync_sources(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    for e in fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let e = e?;
        if !e.file_type()?.is_file() {
            continue;
        }
        let data = fs::read(e.path())?;
        let target = dst.join(e.file_name());
        if fs::read(&target).ok().as_deref() != Some(&data[..]) {
            fs::write(&target, &data).with_context(|| format!("writing {}", target.display()))?;
        }
    }
    Ok(())
}

/// The `make` command that builds the module in `dir` against `built`.
pub fn make_command(arch: &ArchProfile, built: &Built, dir: &Path) -> Command {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(&built.dir)
        .arg(format!("M={}", dir.display()))
        .arg(format!("ARCH={}", arch.kernel_arch))
        .args(built.toolchain.make_vars(arch));
    cmd.arg("modules");
    cmd
}

/// Builds `ksh_probe.ko` for `built`; returns its path. The make output
/// goes to `build.log` next to the module.
pub fn build(arch: &ArchProfile, built: &Built) -> Result<PathBuf> {
    let dir = build_dir(built);
    sync_sources(&source_dir(), &dir)?;
    let ko = ko_path(built);
    if is_up_to_date(&ko, &dir, built) {
        // Even a no-op kbuild `make` costs seconds (it re-reads the whole
        // build's makefiles); a warm rerun skips it.
        return Ok(ko);
    }
    let log = crate::layout::build_log(&dir);
    let mut cmd = make_command(arch, built, &dir);
    let line = shell_line(&cmd);
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("running {line}"))?;
    if !status.success() || !ko.is_file() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        bail!(
            "building the probe module failed ({status})\n{tail}\nlog: {}\ncommand: {line}",
            log.display()
        );
    }
    Ok(ko)
}

/// Whether `ko` is newer than everything it is built from: the module's
/// sources (copied only when they change, so their mtimes are stable), the
/// kernel it links against and that kernel's configuration.
fn is_up_to_date(ko: &Path, dir: &Path, built: &Built) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(ko_time) = mtime(ko) else {
        return false;
    };
    let mut inputs = vec![
        built.vmlinux.clone(),
        built.dir.join("Module.symvers"),
        built.dir.join(".config"),
    ];
    if let Ok(rd) = fs::read_dir(source_dir()) {
        inputs.extend(rd.flatten().map(|e| dir.join(e.file_name())));
    }
    inputs
        .iter()
        .all(|p| mtime(p).is_some_and(|t| t <= ko_time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::toolchain::Toolchain;
    use std::time::Duration;

    #[test]
    fn make_command_targets_the_build_dir() {
        let built = Built {
            dir: "/b/arm64-minimal".into(),
            image: "/b/Image".into(),
            vmlinux: "/b/vmlinux".into(),
            log: "/b/build.log".into(),
            toolchain: Toolchain::Gcc,
            ran_make: false,
            elapsed: Duration::ZERO,
        };
        let dir = build_dir(&built);
        let line = shell_line(&make_command(&crate::cell::arch::ARM64, &built, &dir));
        assert_eq!(
            line,
            "make -C /b/arm64-minimal M=/b/arm64-minimal/ksh-probe-module ARCH=arm64 \
             CROSS_COMPILE=aarch64-linux-gnu- modules"
        );
        // A kernel built with LLVM gets its module built with LLVM.
        let llvm = Built {
            toolchain: Toolchain::Llvm,
            ..built
        };
        let line = shell_line(&make_command(&crate::cell::arch::ARM64, &llvm, &dir));
        assert!(line.ends_with("ARCH=arm64 LLVM=1 modules"), "{line}");
        assert!(source_dir().join("ksh_probe.c").is_file());
        assert!(source_dir().join("Kbuild").is_file());
    }

    #[test]
    fn sync_rewrites_only_changed_files() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.c"), "x").unwrap();
        sync_sources(src.path(), dst.path()).unwrap();
        let t0 = fs::metadata(dst.path().join("a.c"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        sync_sources(src.path(), dst.path()).unwrap();
        let t1 = fs::metadata(dst.path().join("a.c"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(t0, t1);
        fs::write(src.path().join("a.c"), "y").unwrap();
        sync_sources(src.path(), dst.path()).unwrap();
        assert_eq!(fs::read_to_string(dst.path().join("a.c")).unwrap(), "y");
    }
}
