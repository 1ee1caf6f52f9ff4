//! [`CellId`]: one cell of the matrix (kernel × arch × config variant ×
//! toolchain × source), and [`SourceKey`], a prepared source's name in the
//! cache. The only place a cell's strings are built and taken apart:
//! config labels (`minimal-llvm`), cell names (`x86_64/minimal-llvm`, the
//! prefix of its test names and its JUnit suite), directory names
//! (`x86_64-minimal-llvm`, its build and run dirs) and source keys
//! (`6.12.118-1_deb12u1-patched`, `tree-ab12cd34`).
//!
//! The kernel and the source are fields of every cell but not (yet) of its
//! visible names: one invocation runs one kernel from one kind of source,
//! and build and run dirs are under the source's key.

use std::fmt;
use std::path::{Path, PathBuf};

use super::arch::{self, ArchProfile};
use super::kernel::Kernel;
use super::toolchain::Toolchain;
use crate::layout;

/// What kind of tree a cell's kernel is built from. A mutant (`cargo
/// xtask mutants`) is planted in the [`SourceKind::Patched`] tree in place:
/// the same cell, the same dirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Debian's tarball with the whole patch series.
    Patched,
    /// Debian's tarball with the series' test-only (`baseline`) patches.
    Baseline,
    /// Debian's tarball with the first N patches of the series (`cargo
    /// xtask check-series`); one tree serves every N.
    SeriesPrefix,
    /// A user's tree (`--kernel-tree`, each step of `cargo xtask
    /// bisect`), used as it is.
    UserTree,
}

impl SourceKind {
    const ALL: [SourceKind; 4] = [
        SourceKind::Patched,
        SourceKind::Baseline,
        SourceKind::SeriesPrefix,
        SourceKind::UserTree,
    ];

    /// The kind's word in its source keys and messages.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Patched => "patched",
            SourceKind::Baseline => "baseline",
            SourceKind::SeriesPrefix => "series-prefix",
            SourceKind::UserTree => "tree",
        }
    }
}

/// A prepared source's key in the cache (`src/<key>/`, `build/<key>/`,
/// `runs/<key>/`): its kind and what tells two trees of that kind apart
/// (Debian's package version, `6.12.118-1_deb12u1`; for a user's tree a
/// digest of its path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceKey {
    pub kind: SourceKind,
    pub tag: String,
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SourceKind::UserTree => write!(f, "{}-{}", self.kind.name(), self.tag),
            kind => write!(f, "{}-{}", self.tag, kind.name()),
        }
    }
}

impl SourceKey {
    /// Takes a key apart; None for a string no source key looks like.
    pub fn parse(key: &str) -> Option<SourceKey> {
        let key_of = |kind: SourceKind, tag: &str| {
            (!tag.is_empty()).then(|| SourceKey {
                kind,
                tag: tag.to_string(),
            })
        };
        // Debian's kinds by their suffix first: a user tree's tag is a
        // hex digest, which never ends in one.
        let debian = SourceKind::ALL
            .into_iter()
            .filter(|k| *k != SourceKind::UserTree)
            .find_map(|kind| {
                let tag = key.strip_suffix(kind.name())?.strip_suffix('-')?;
                key_of(kind, tag)
            });
        debian.or_else(|| {
            let tag = key
                .strip_prefix(SourceKind::UserTree.name())?
                .strip_prefix('-')?;
            key_of(SourceKind::UserTree, tag)
        })
    }
}

/// One cell: a kernel of one source, built for one arch from one config
/// variant with one toolchain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellId {
    pub kernel: Kernel,
    pub arch: &'static ArchProfile,
    /// The config variant (`kernel-configs/variants/<variant>.config`).
    pub variant: String,
    pub toolchain: Toolchain,
    pub source: SourceKind,
}

impl CellId {
    /// The cell of `variant` built with `toolchain` for `arch` from a
    /// source of kind `source`, of kernel line 6.12 (see
    /// [`CellId::of_kernel`]; the prepared tree decides in the end:
    /// `testrun::Cell::new`).
    pub fn new(
        arch: &'static ArchProfile,
        variant: &str,
        toolchain: Toolchain,
        source: SourceKind,
    ) -> CellId {
        CellId {
            kernel: Kernel::V6_12,
            arch,
            variant: variant.to_string(),
            toolchain,
            source,
        }
    }

    /// The same cell of kernel line `kernel`.
    pub fn of_kernel(self, kernel: Kernel) -> CellId {
        CellId { kernel, ..self }
    }

    /// The cell of the config label `label` (see [`CellId::label`]).
    pub fn with_label(arch: &'static ArchProfile, label: &str, source: SourceKind) -> CellId {
        let (variant, toolchain) = CellId::split_label(label);
        CellId::new(arch, variant, toolchain, source)
    }

    /// The config label: the variant, with `-llvm` when built with LLVM
    /// (`minimal`, `minimal-llvm`). It carries the toolchain into every
    /// visible name, so the two toolchains' cells never share a build dir,
    /// a test name or a JUnit suite.
    pub fn label(&self) -> String {
        CellId::config_label(&self.variant, self.toolchain)
    }

    /// The label of `variant` built with `toolchain` (see [`CellId::label`]).
    pub fn config_label(variant: &str, toolchain: Toolchain) -> String {
        format!("{variant}{}", label_suffix(toolchain))
    }

    /// A config label's variant and toolchain (`minimal-llvm` → `minimal`,
    /// LLVM): the inverse of [`CellId::label`].
    pub fn split_label(label: &str) -> (&str, Toolchain) {
        Toolchain::ALL
            .into_iter()
            .filter(|t| !label_suffix(*t).is_empty())
            .find_map(|t| {
                let variant = label.strip_suffix(label_suffix(t))?;
                (!variant.is_empty()).then_some((variant, t))
            })
            .unwrap_or((label, Toolchain::Gcc))
    }

    /// `KERNEL/ARCH/LABEL` (`7.3/x86_64/minimal-llvm`): the prefix of
    /// every test name of the cell, its JUnit suite, how messages name it.
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.kernel, self.arch.name, self.label())
    }

    /// Takes a cell name apart (see [`CellId::name`]); the source is not
    /// part of it, so the caller says which. None for an unknown kernel
    /// line or arch, or an empty part.
    pub fn parse_name(name: &str, source: SourceKind) -> Option<CellId> {
        let mut parts = name.splitn(3, '/');
        let (Some(kernel), Some(arch), Some(label)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if label.is_empty() || label.contains('/') {
            return None;
        }
        let kernel = Kernel::parse(kernel).ok()?;
        let arch = arch::by_name(arch).ok()?;
        Some(CellId::with_label(arch, label, source).of_kernel(kernel))
    }

    /// `ARCH-LABEL` (`x86_64-minimal-llvm`): the cell's directory under
    /// its source's key in `build/` and `runs/`, and of its objects inside
    /// a harness-owned tree.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.arch.name, self.label())
    }

    /// The cell's persistent build dir for the source `key`.
    pub fn build_dir(&self, key: &SourceKey) -> PathBuf {
        layout::build_dir(&key.to_string(), &self.dir_name())
    }

    /// Where the cell's objects live inside a harness-owned `tree`.
    pub fn in_tree_build_dir(&self, tree: &Path) -> PathBuf {
        layout::in_tree_build_dir(tree, &self.dir_name())
    }

    /// The run dirs of the cell's test runs for the source `key`.
    pub fn runs_dir(&self, key: &SourceKey) -> PathBuf {
        layout::runs_dir(&key.to_string(), &self.dir_name())
    }

    /// Where `cargo xtask mutants` keeps the last run of the mutant
    /// `mutant` in this cell, beside its run dirs.
    pub fn mutant_run_dir(&self, key: &SourceKey, mutant: &str) -> PathBuf {
        self.runs_dir(key)
            .join(format!("{}-mutant-{mutant}", self.dir_name()))
    }

    /// The run dirs of the cell's shell sessions (`cargo xtask run`).
    pub fn shell_runs_dir(&self, key: &SourceKey) -> PathBuf {
        layout::runs_dir(&key.to_string(), &format!("{}-shell", self.dir_name()))
    }
}

/// What a toolchain adds to a variant's name in a config label.
fn label_suffix(t: Toolchain) -> &'static str {
    match t {
        Toolchain::Gcc => "",
        Toolchain::Llvm => "-llvm",
    }
}

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::arch::{ARM64, X86_64};

    fn cell(arch: &'static ArchProfile, variant: &str, t: Toolchain) -> CellId {
        CellId::new(arch, variant, t, SourceKind::Patched)
    }

    #[test]
    fn the_names_of_today() {
        let gcc = cell(&X86_64, "minimal", Toolchain::Gcc);
        assert_eq!(gcc.kernel.version(), "6.12");
        assert_eq!(gcc.label(), "minimal");
        assert_eq!(gcc.name(), "6.12/x86_64/minimal");
        assert_eq!(gcc.dir_name(), "x86_64-minimal");
        let llvm = cell(&ARM64, "kprobes", Toolchain::Llvm);
        assert_eq!(llvm.label(), "kprobes-llvm");
        assert_eq!(llvm.name(), "6.12/arm64/kprobes-llvm");
        assert_eq!(llvm.dir_name(), "arm64-kprobes-llvm");
        assert_eq!(llvm.to_string(), "6.12/arm64/kprobes-llvm");
        let mainline = llvm.clone().of_kernel(Kernel::mainline());
        assert_eq!(mainline.name(), "7.3/arm64/kprobes-llvm");
        // The kernel line is in the source key, not again in the dir name.
        assert_eq!(mainline.dir_name(), "arm64-kprobes-llvm");
        let key = SourceKey {
            kind: SourceKind::Patched,
            tag: "6.12.118-1_deb12u1".into(),
        };
        assert_eq!(key.to_string(), "6.12.118-1_deb12u1-patched");
        assert!(gcc
            .build_dir(&key)
            .ends_with("build/6.12.118-1_deb12u1-patched/x86_64-minimal"));
        assert!(gcc
            .runs_dir(&key)
            .ends_with("runs/6.12.118-1_deb12u1-patched/x86_64-minimal"));
        assert!(gcc
            .mutant_run_dir(&key, "m")
            .ends_with("runs/6.12.118-1_deb12u1-patched/x86_64-minimal/x86_64-minimal-mutant-m"));
        assert!(gcc
            .shell_runs_dir(&key)
            .ends_with("runs/6.12.118-1_deb12u1-patched/x86_64-minimal-shell"));
        assert_eq!(
            gcc.in_tree_build_dir(Path::new("/t")),
            Path::new("/t/.ksh-build-x86_64-minimal")
        );
        for (kind, tag, text) in [
            (
                SourceKind::Baseline,
                "6.12.118-1_deb12u1",
                "6.12.118-1_deb12u1-baseline",
            ),
            (
                SourceKind::SeriesPrefix,
                "6.12.118-1_deb12u1",
                "6.12.118-1_deb12u1-series-prefix",
            ),
            (SourceKind::UserTree, "ab12cd34", "tree-ab12cd34"),
            (
                SourceKind::Patched,
                "tarball-123-456",
                "tarball-123-456-patched",
            ),
        ] {
            let key = SourceKey {
                kind,
                tag: tag.into(),
            };
            assert_eq!(key.to_string(), text);
        }
    }

    #[test]
    fn names_round_trip() {
        for arch in arch::ALL {
            for t in Toolchain::ALL {
                for v in ["minimal", "kprobes", "defconfig-extra-pass"] {
                    for s in SourceKind::ALL {
                        for k in Kernel::all() {
                            let c = CellId::new(arch, v, t, s).of_kernel(k);
                            assert_eq!(CellId::with_label(arch, &c.label(), s).of_kernel(k), c);
                            assert_eq!(CellId::split_label(&c.label()), (v, t));
                            assert_eq!(CellId::parse_name(&c.name(), s), Some(c.clone()));
                        }
                    }
                }
            }
        }
        // `-llvm` alone is a variant's name, not an empty variant.
        assert_eq!(CellId::split_label("-llvm"), ("-llvm", Toolchain::Gcc));
        for bad in [
            "x86_64",
            "x86_64/minimal",
            "6.12/riscv/minimal",
            "5.4/x86_64/minimal",
            "6.12/x86_64/",
            "6.12/x86_64/a/b",
            "6.12//minimal",
            "/x86_64/minimal",
        ] {
            assert_eq!(CellId::parse_name(bad, SourceKind::Patched), None, "{bad}");
        }
    }

    #[test]
    fn source_keys_round_trip() {
        for kind in SourceKind::ALL {
            for tag in ["6.12.118-1_deb12u1", "tarball-1-2", "ab12cd34"] {
                let key = SourceKey {
                    kind,
                    tag: tag.into(),
                };
                assert_eq!(SourceKey::parse(&key.to_string()), Some(key));
            }
        }
        for bad in ["patched", "-patched", "tree-", "6.12.118", ""] {
            assert_eq!(SourceKey::parse(bad), None, "{bad}");
        }
    }
}
