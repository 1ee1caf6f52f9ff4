//! Choosing the accelerator: `--accel auto|kvm|tcg`.
//!
//! "KVM present" is not "KVM works": on nested hosts `/dev/kvm` exists but a
//! Linux guest hangs before printing anything. `auto` tries KVM only where it
//! has not been seen to hang on this host, falls back to TCG when the guest
//! stays silent, and remembers the verdict (per arch, host kernel and QEMU
//! version) in the cache so later runs go straight to what works.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cell::arch::ArchProfile;
use crate::layout;
use crate::vm::qemu::Accel;

/// What the user asked for (`--accel`, default `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(format!("unknown accelerator '{s}'; valid: auto, kvm, tcg")),
        }
    }
}

/// How long a KVM attempt may stay silent before `auto` gives up on it.
/// Under working KVM the console speaks well within a second.
pub const KVM_PROBE_SILENCE: Duration = Duration::from_secs(6);

fn verdict_file() -> PathBuf {
    layout::accel_verdicts()
}

fn host_key(arch: &ArchProfile) -> String {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qemu = std::process::Command::new(arch.qemu.binary)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    format!("{} | {} | {}", arch.name, release.trim(), qemu.trim())
}

fn load() -> BTreeMap<String, String> {
    fs::read(verdict_file())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Remembers whether KVM booted a Linux guest for `arch` on this host.
pub fn remember(arch: &ArchProfile, kvm_boots: bool) {
    let mut all = load();
    all.insert(
        host_key(arch),
        if kvm_boots { "boots" } else { "hangs" }.to_string(),
    );
    let _ = layout::ensure_dir(&layout::cache_root());
    if let Ok(text) = serde_json::to_vec_pretty(&all) {
        let _ = fs::write(verdict_file(), text);
    }
}

fn kvm_usable() -> bool {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The accelerators to try, in order.
pub fn candidates(choice: AccelChoice, arch: &ArchProfile) -> Result<Vec<Accel>> {
    Ok(match choice {
        AccelChoice::Tcg => vec![Accel::Tcg],
        AccelChoice::Kvm => {
            if !arch.qemu.kvm_possible {
                bail!(
                    "--accel kvm: {} guests cannot use KVM on this host; use --accel tcg or auto",
                    arch.name
                );
            }
            if !kvm_usable() {
                bail!(
                    "--accel kvm: /dev/kvm is missing or not accessible; use --accel tcg or auto"
                );
            }
            vec![Accel::Kvm]
        }
        AccelChoice::Auto => {
            let seen_hang = load().get(&host_key(arch)).map(String::as_str) == Some("hangs");
            if arch.qemu.kvm_possible && kvm_usable() && !seen_hang {
                vec![Accel::Kvm, Accel::Tcg]
            } else {
                vec![Accel::Tcg]
            }
        }
    })
}

/// The one accelerator of an interactive VM (no silent-KVM fallback
/// there): KVM under `auto` only where it has been seen to boot a guest.
pub fn for_interactive(choice: AccelChoice, arch: &ArchProfile) -> Result<Accel> {
    Ok(match choice {
        AccelChoice::Auto => {
            let boots = load().get(&host_key(arch)).map(String::as_str) == Some("boots");
            if arch.qemu.kvm_possible && kvm_usable() && boots {
                Accel::Kvm
            } else {
                Accel::Tcg
            }
        }
        c => candidates(c, arch)?[0],
    })
}

/// Where verdicts are kept, for messages.
pub fn verdict_path() -> PathBuf {
    verdict_file()
}
