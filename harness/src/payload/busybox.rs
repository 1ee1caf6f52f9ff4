//! The shell of `cargo xtask run`: Debian's `busybox-static` for the
//! guest's arch, fetched with `apt-get download` (the arm64 package needs
//! arm64 in dpkg's architectures; the host's own `busybox` package is not
//! used, so both arches are got the same way), unpacked with `dpkg-deb`
//! into the cache and checked to be a static binary of the right machine.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cell::arch::ArchProfile;
use crate::layout;

/// The Debian package.
pub const PACKAGE: &str = "busybox-static";

/// `target/ksh/busybox/<debian arch>/busybox`, fetched when missing.
pub fn ensure(arch: &ArchProfile) -> Result<PathBuf> {
    let dir = layout::busybox_dir(arch.debian_arch);
    let bin = dir.join("busybox");
    if bin.is_file() {
        if let Err(e) = check(arch, &bin) {
            eprintln!("ksh: {}: {e:#}; fetching it again", bin.display());
            fs::remove_file(&bin)?;
        } else {
            return Ok(bin);
        }
    }
    let pkg = format!("{PACKAGE}:{}", arch.debian_arch);
    let native = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let foreign = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let needs_arch = native != arch.debian_arch && !foreign.lines().any(|l| l == arch.debian_arch);
    let mut commands: Vec<Vec<String>> = Vec::new();
    if needs_arch {
        commands.push(vec![
            "dpkg".into(),
            "--add-architecture".into(),
            arch.debian_arch.into(),
        ]);
        commands.push(vec!["apt-get".into(), "update".into()]);
    }
    if !crate::kernel::prereqs::is_root() {
        let mut all: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
        all.push(format!("apt-get download {pkg}"));
        bail!(
            "the guest shell needs Debian's {pkg}, and only root can fetch it here; run as root:\n  {}\nthen: dpkg-deb -x busybox-static_*_{}.deb DIR && cp DIR/bin/busybox {}",
            all.join(" && "),
            arch.debian_arch,
            bin.display()
        );
    }
    layout::ensure_dir(&dir)?;
    for c in &commands {
        eprintln!("ksh: $ {}", c.join(" "));
        crate::process::run_checked(Command::new(&c[0]).args(&c[1..]))?;
    }
    let work = dir.join(format!("fetch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    layout::ensure_dir(&work)?;
    let result = (|| -> Result<()> {
        eprintln!("ksh: fetching {pkg} for the guest shell (apt-get download)");
        let dl = crate::process::run_checked(
            Command::new("apt-get")
                .arg("download")
                .arg(&pkg)
                .current_dir(&work),
        );
        if dl.is_err() && !needs_arch {
            // An index without the package's arch (dpkg knows the arch but
            // apt-get update never ran since): once more after an update.
            crate::process::run_checked(Command::new("apt-get").arg("update"))?;
            crate::process::run_checked(
                Command::new("apt-get")
                    .arg("download")
                    .arg(&pkg)
                    .current_dir(&work),
            )?;
        } else {
            dl?;
        }
        let deb = fs::read_dir(&work)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("apt-get download left no .deb")?;
        let root = work.join("root");
        crate::process::run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        let got = root.join("bin/busybox");
        check(arch, &got)?;
        fs::rename(&got, &bin).with_context(|| format!("moving busybox to {}", bin.display()))?;
        Ok(())
    })();
    let _ = fs::remove_dir_all(&work);
    result.with_context(|| format!("fetching {pkg} into {}", dir.display()))?;
    Ok(bin)
}

/// A static ELF executable for `arch`'s machine.
fn check(arch: &ArchProfile, path: &std::path::Path) -> Result<()> {
    use object::{Object, ObjectKind};
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{}: not an ELF file", path.display()))?;
    let machine = match file.architecture() {
        object::Architecture::X86_64 => 62,
        object::Architecture::Aarch64 => 183,
        _ => 0,
    };
    if machine != arch.elf_machine {
        bail!(
            "{}: not an {} binary ({:?})",
            path.display(),
            arch.name,
            file.architecture()
        );
    }
    if file.kind() != ObjectKind::Executable || has_interpreter(&data) {
        bail!("{}: not a static executable", path.display());
    }
    Ok(())
}

/// Whether a 64-bit little-endian ELF has a `PT_INTERP` program header
/// (needs a dynamic loader the initramfs does not have).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        elf.get(o..o + 4) == Some(&3u32.to_le_bytes()[..])
    })
}
