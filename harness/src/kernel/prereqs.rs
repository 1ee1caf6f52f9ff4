//! Host prerequisites: tools, headers, kernel source and guest Rust targets.
//!
//! Each requirement names how it is detected and which Debian package (or
//! `rustup` target) provides it. Missing ones are installed when running as
//! root, with one line saying what; otherwise we stop with the exact command.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cell::arch::ArchProfile;
use crate::cell::kernel::DebianSuite;
use crate::cell::Kernel;

/// How a requirement is detected on the host.
#[derive(Debug, Clone)]
enum Probe {
    /// An executable on `PATH`.
    Command(&'static str),
    /// A file at a fixed path (headers, the source tarball).
    File(std::borrow::Cow<'static, str>),
}

#[derive(Debug, Clone)]
struct Requirement {
    probe: Probe,
    package: &'static str,
}

/// What every kernel build needs, whatever the architecture.
const BUILD_TOOLS: &[Requirement] = &[
    Requirement {
        probe: Probe::Command("make"),
        package: "make",
    },
    Requirement {
        probe: Probe::Command("gcc"),
        package: "gcc",
    },
    Requirement {
        probe: Probe::Command("flex"),
        package: "flex",
    },
    Requirement {
        probe: Probe::Command("bison"),
        package: "bison",
    },
    Requirement {
        probe: Probe::Command("bc"),
        package: "bc",
    },
    Requirement {
        probe: Probe::Command("perl"),
        package: "perl",
    },
    Requirement {
        probe: Probe::Command("xz"),
        package: "xz-utils",
    },
    Requirement {
        probe: Probe::Command("cpio"),
        package: "cpio",
    },
    Requirement {
        probe: Probe::Command("git"),
        package: "git",
    },
    // Compiler results shared between the patched, baseline, mutant and
    // series-prefix builds of one arch/config (see `kbuild::ccache`).
    Requirement {
        probe: Probe::Command("ccache"),
        package: "ccache",
    },
    // `--gdb` prints a gdb command line (x86_64 guests; arm64 ones need
    // gdb-multiarch, which the message names); the gdb-session test runs it.
    Requirement {
        probe: Probe::Command("gdb"),
        package: "gdb",
    },
    Requirement {
        probe: Probe::File(std::borrow::Cow::Borrowed("/usr/include/gelf.h")),
        package: "libelf-dev",
    },
    Requirement {
        probe: Probe::File(std::borrow::Cow::Borrowed("/usr/include/openssl/ssl.h")),
        package: "libssl-dev",
    },
];

/// What `LLVM=1` builds call (`--toolchain llvm`): clang (for the arm64
/// cross build too), ld.lld, and llvm-nm, llvm-ar, llvm-objcopy & co.
const LLVM_TOOLS: &[Requirement] = &[
    Requirement {
        probe: Probe::Command("clang"),
        package: "clang",
    },
    Requirement {
        probe: Probe::Command("ld.lld"),
        package: "lld",
    },
    Requirement {
        probe: Probe::Command("llvm-nm"),
        package: "llvm",
    },
];

/// What Debian's source of `kernel` needs from the machine: its package
/// (the machine's suite), or what the private apt needs to fetch it.
fn kernel_source(kernel: Kernel) -> Requirement {
    match kernel.line().suite {
        DebianSuite::Machine => Requirement {
            probe: Probe::File(
                kernel
                    .tarball_in(Path::new("/"))
                    .display()
                    .to_string()
                    .into(),
            ),
            package: kernel.line().package,
        },
        DebianSuite::Private(_) => Requirement {
            probe: Probe::File(crate::kernel::debian_suite::ARCHIVE_KEYRING.into()),
            package: "debian-archive-keyring",
        },
    }
}

/// An LLVM build of `kernel` needs its clang: refused up front, naming the
/// minimum and the version found (Debian bookworm has clang 14; 7.3 needs 17).
fn check_llvm_version(kernel: Kernel) -> Result<()> {
    let min = kernel.line().min_tools.llvm;
    let out = Command::new("clang").arg("--version").output();
    let found = out
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "none".into());
    if found == "none" || !crate::cell::kernel::at_least(&found, min) {
        bail!(
            "Linux {kernel} builds with LLVM need clang {min} or newer; found clang {found} \
             (`clang --version`). Build this kernel with --toolchain gcc, or install a newer clang"
        );
    }
    Ok(())
}

pub fn on_path(cmd: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let p = dir.join(cmd);
        p.metadata().map(|m| m.is_file()).unwrap_or(false)
    })
}

fn present(r: &Requirement) -> bool {
    match &r.probe {
        Probe::Command(c) => on_path(c),
        Probe::File(f) => Path::new(f.as_ref()).exists(),
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Which kernel source a subcommand builds from, for its prerequisites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceNeed {
    /// No Debian source: a user's tree only, or no kernel at all.
    None,
    /// Debian's `linux-source` package, whatever the selection says.
    Debian,
    /// Debian's, unless the run is on a user's `--kernel-tree`.
    DebianUnlessTree,
}

/// What a subcommand needs of the host besides the build tools, declared
/// once in its module (`const NEEDS: Needs`); the kernels it selects add
/// the rest ([`Selected`]) when it calls [`Needs::ensure`].
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub source: SourceNeed,
    /// Whether guest programs are built (not for `cargo xtask build`).
    pub guest: bool,
}

/// What the kernels a run selects add to its subcommand's [`Needs`].
#[derive(Debug, Clone, Default)]
pub struct Selected<'a> {
    /// Their architectures (host tools, the guest's Rust targets).
    pub arches: Vec<&'a ArchProfile>,
    /// Built from a user's `--kernel-tree` instead of Debian's source.
    pub user_tree: bool,
    /// Whether a kernel is built with LLVM (`--toolchain llvm`).
    pub llvm: bool,
    /// The kernel line of Debian's source (`--kernel`).
    pub kernel: Kernel,
}

impl Needs {
    /// Whether Debian's kernel source is needed for `selected`.
    fn debian_source(&self, selected: &Selected) -> bool {
        match self.source {
            SourceNeed::None => false,
            SourceNeed::Debian => true,
            SourceNeed::DebianUnlessTree => !selected.user_tree,
        }
    }

    /// Checks every prerequisite for these needs and the `selected`
    /// kernels, installing what is missing when possible. Returns an error
    /// with the exact command otherwise.
    pub fn ensure(&self, selected: &Selected) -> Result<()> {
        let mut missing_pkgs: Vec<&str> = Vec::new();
        let mut add = |r: &Requirement| {
            if !present(r) && !missing_pkgs.contains(&r.package) {
                missing_pkgs.push(r.package);
            }
        };
        BUILD_TOOLS.iter().for_each(&mut add);
        if self.debian_source(selected) {
            add(&kernel_source(selected.kernel));
        }
        if selected.llvm {
            LLVM_TOOLS.iter().for_each(&mut add);
        }
        for arch in &selected.arches {
            for &(command, package) in arch.host_tools {
                add(&Requirement {
                    probe: Probe::Command(command),
                    package,
                });
            }
        }
        if !missing_pkgs.is_empty() {
            install_packages(&missing_pkgs)?;
        }
        if selected.llvm && !selected.user_tree {
            check_llvm_version(selected.kernel)?;
        }
        if self.guest {
            let targets: Vec<&str> = selected.arches.iter().map(|a| a.rust_target).collect();
            ensure_rust_targets(&targets)?;
        }
        Ok(())
    }
}

fn install_packages(pkgs: &[&str]) -> Result<()> {
    let list = pkgs.join(" ");
    let cmd = format!("apt-get install -y --no-install-recommends {list}");
    if !is_root() || !on_path("apt-get") {
        bail!("missing host packages: {list}\nrun: sudo apt-get update && sudo {cmd}");
    }
    eprintln!("ksh: installing Debian packages: {list}");
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .context("running apt-get")?;
        if !out.status.success() {
            bail!(
                "`apt-get {}` failed ({}):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    // A fresh machine has no package lists; an update is cheap next to a
    // kernel build and avoids installing stale versions.
    run(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend_from_slice(pkgs);
    run(&args)?;
    Ok(())
}

fn ensure_rust_targets(targets: &[&str]) -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let installed = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => bail!(
            "rustup is needed to add the guest targets; install rustup, then run: rustup target add {}",
            targets.join(" ")
        ),
    };
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("ksh: adding Rust targets: {}", missing.join(" "));
    let status = Command::new("rustup")
        .args(["target", "add"])
        .args(&missing)
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!(
            "`rustup target add {}` failed ({status})",
            missing.join(" ")
        );
    }
    Ok(())
}
