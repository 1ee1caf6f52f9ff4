//! The kernels the harness supports, as data: one [`KernelLine`] per
//! upstream line, with where Debian ships its source, the patch series
//! that carries the work on it, the output format its `scripts/kallsyms`
//! has (and so the Rust generator's `--format`), and the minimum tool
//! versions of its `scripts/min-tool-version.sh`. Adding a kernel is one
//! entry in [`KERNELS`] plus its ported series under `patches/`.

use std::fmt;

/// Where Debian's source package of a kernel line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebianSuite {
    /// The machine's own apt sources (`apt-get install`, as root).
    Machine,
    /// A suite the machine's sources may lack, fetched with a private apt
    /// configuration in the cache (`kernel::debian_suite`), no root needed.
    Private(&'static str),
}

/// Minimum versions (`major.minor.patch`) of the tools a kernel line
/// builds with on the arches the harness runs (x86_64, arm64), from its
/// `scripts/min-tool-version.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinTools {
    pub gcc: &'static str,
    pub binutils: &'static str,
    /// clang, ld.lld and the other LLVM tools of an `LLVM=1` build.
    pub llvm: &'static str,
    pub rustc: &'static str,
}

/// One supported kernel line.
#[derive(Debug, PartialEq, Eq)]
pub struct KernelLine {
    /// `6.12`: how users name it (`--kernel 6.12`), the name of its series
    /// directory (`patches/6.12/`) and the `VERSION.PATCHLEVEL` of its
    /// trees' `Makefile`.
    pub version: &'static str,
    /// Debian's source package (`linux-source-6.12`); it installs
    /// `/usr/src/<package>.tar.xz`.
    pub package: &'static str,
    pub suite: DebianSuite,
    /// `kallsyms-gen --format=` for this line's `scripts/kallsyms`.
    pub generator_format: &'static str,
    /// The options `scripts/link-vmlinux.sh` passes to the generator, each
    /// with the config options of which any one makes it pass it.
    pub generator_flags: &'static [(&'static str, &'static [&'static str])],
    pub min_tools: MinTools,
}

/// Every supported kernel line, oldest first.
pub const KERNELS: &[KernelLine] = &[
    KernelLine {
        version: "6.12",
        package: "linux-source-6.12",
        suite: DebianSuite::Machine,
        generator_format: "6.12",
        generator_flags: &[
            ("--all-symbols", &["CONFIG_KALLSYMS_ALL"]),
            ("--absolute-percpu", &["CONFIG_KALLSYMS_ABSOLUTE_PERCPU"]),
        ],
        min_tools: MinTools {
            gcc: "5.1.0",
            binutils: "2.25.0",
            llvm: "13.0.1",
            rustc: "1.78.0",
        },
    },
    KernelLine {
        version: "7.3",
        package: "linux-source-7.3",
        suite: DebianSuite::Private("trixie-backports"),
        generator_format: "7.3",
        generator_flags: &[
            ("--all-symbols", &["CONFIG_KALLSYMS_ALL"]),
            ("--pc-relative", &["CONFIG_64BIT", "CONFIG_RELOCATABLE"]),
        ],
        min_tools: MinTools {
            gcc: "8.1.0",
            binutils: "2.30.0",
            llvm: "17.0.1",
            rustc: "1.85.0",
        },
    },
];

/// A kernel line, by reference into [`KERNELS`]. Its `Default` (6.12) is
/// what a record written before kernels were a dimension means; commands
/// default to [`Kernel::mainline`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kernel(&'static str);

impl Default for Kernel {
    fn default() -> Kernel {
        Kernel::V6_12
    }
}

impl Kernel {
    /// The line Debian's machine suite ships, and the default of a cell
    /// built from a tree whose version is not known yet.
    pub const V6_12: Kernel = Kernel("6.12");

    /// The line named `version` (`6.12`, `7.3`), or an error that lists
    /// the supported ones.
    pub fn parse(version: &str) -> Result<Kernel, String> {
        KERNELS
            .iter()
            .find(|k| k.version == version)
            .map(|k| Kernel(k.version))
            .ok_or_else(|| {
                format!(
                    "kernel {version} is not supported (supported: {})",
                    Kernel::all()
                        .map(|k| k.version())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// The line of a tree whose top `Makefile` says `VERSION = a` and
    /// `PATCHLEVEL = b`, or an error naming the version found and the
    /// supported ones.
    pub fn of_makefile(makefile: &str) -> Result<Kernel, String> {
        let field = |name: &str| {
            makefile.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        match (field("VERSION"), field("PATCHLEVEL")) {
            (Some(v), Some(p)) if !v.is_empty() && !p.is_empty() => {
                Kernel::parse(&format!("{v}.{p}"))
            }
            _ => Err("no VERSION/PATCHLEVEL lines in its Makefile".to_string()),
        }
    }

    pub fn all() -> impl Iterator<Item = Kernel> {
        KERNELS.iter().map(|k| Kernel(k.version))
    }

    /// Mainline: the newest supported line (the last entry of
    /// [`KERNELS`]), where kallsyms work is posted and regressions are
    /// bisected; what a command runs when no `--kernel` is given.
    pub fn mainline() -> Kernel {
        let newest = KERNELS.last().expect("KERNELS is not empty");
        Kernel(newest.version)
    }

    /// The lines a `--kernel` list names (`6.12,7.3`, or `all`), each
    /// once, oldest first; an empty list is [`Kernel::mainline`].
    pub fn parse_list<S: AsRef<str>>(versions: &[S]) -> Result<Vec<Kernel>, String> {
        if versions.is_empty() {
            return Ok(vec![Kernel::mainline()]);
        }
        let mut out = Vec::new();
        for v in versions {
            match v.as_ref().trim() {
                "all" => out.extend(Kernel::all()),
                v => out.push(Kernel::parse(v)?),
            }
        }
        Ok(Kernel::all().filter(|k| out.contains(k)).collect())
    }

    pub fn line(self) -> &'static KernelLine {
        KERNELS
            .iter()
            .find(|k| k.version == self.0)
            .expect("a Kernel is made from an entry of KERNELS")
    }

    /// `6.12`: the line's version, also its series directory's name.
    pub fn version(self) -> &'static str {
        self.0
    }

    /// The generator options `link-vmlinux.sh` of this line passes for
    /// `.config` text `config`.
    pub fn generator_flags(self, config: &str) -> Vec<&'static str> {
        let on = |o: &str| config.lines().any(|l| l.strip_suffix("=y") == Some(o));
        self.line()
            .generator_flags
            .iter()
            .filter(|(_, options)| options.iter().any(|o| on(o)))
            .map(|(flag, _)| *flag)
            .collect()
    }

    /// The Rust generator's option that selects this line's format.
    pub fn rust_generator_format(self) -> String {
        format!("--format={}", self.line().generator_format)
    }

    /// Debian's tarball of the line's source, once its package is
    /// installed (machine suite) or unpacked under `root` (private suite).
    pub fn tarball_in(self, root: &std::path::Path) -> std::path::PathBuf {
        root.join("usr/src")
            .join(format!("{}.tar.xz", self.line().package))
    }
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kernel({})", self.0)
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `a.b.c` as numbers, for comparing versions (missing parts are 0; a
/// non-numeric part ends the version, as in `14.0.6-1`).
pub fn version_numbers(v: &str) -> [u32; 3] {
    let mut out = [0; 3];
    for (slot, part) in out.iter_mut().zip(v.split('.')) {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        match digits.parse() {
            Ok(n) => *slot = n,
            Err(_) => break,
        }
    }
    out
}

/// Whether tool version `found` is at least `minimum`.
pub fn at_least(found: &str, minimum: &str) -> bool {
    version_numbers(found) >= version_numbers(minimum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_unique_and_named_by_their_version() {
        for (i, k) in KERNELS.iter().enumerate() {
            assert!(KERNELS[..i].iter().all(|o| o.version != k.version));
            assert_eq!(Kernel::parse(k.version).unwrap().line(), k);
            assert!(k.package.ends_with(k.version), "{}", k.package);
        }
        assert_eq!(Kernel::V6_12.line().version, "6.12");
        let e = Kernel::parse("5.4").unwrap_err();
        assert!(e.contains("5.4") && e.contains("6.12, 7.3"), "{e}");
    }

    #[test]
    fn kernel_lists_default_to_mainline() {
        let k73 = Kernel::parse("7.3").unwrap();
        assert_eq!(Kernel::mainline(), k73);
        assert_eq!(Kernel::parse_list::<&str>(&[]).unwrap(), [k73]);
        assert_eq!(
            Kernel::parse_list(&["7.3", "6.12", "7.3"]).unwrap(),
            [Kernel::V6_12, k73]
        );
        assert_eq!(
            Kernel::parse_list(&["all"]).unwrap(),
            Kernel::all().collect::<Vec<_>>()
        );
        let e = Kernel::parse_list(&["6.12", "7.4"]).unwrap_err();
        assert!(e.contains("7.4") && e.contains("supported"), "{e}");
    }

    #[test]
    fn a_tree_is_recognised_by_its_makefile() {
        let mk = "# SPDX\nVERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\nEXTRAVERSION =\n";
        assert_eq!(Kernel::of_makefile(mk).unwrap().version(), "7.3");
        let old = "VERSION = 6\nPATCHLEVEL = 6\n";
        let e = Kernel::of_makefile(old).unwrap_err();
        assert!(e.contains("6.6") && e.contains("supported"), "{e}");
        assert!(Kernel::of_makefile("all:\n").is_err());
    }

    #[test]
    fn generator_flags_follow_each_lines_link_script() {
        let cfg = "CONFIG_64BIT=y\nCONFIG_KALLSYMS_ALL=y\nCONFIG_KALLSYMS_ABSOLUTE_PERCPU=y\n";
        assert_eq!(
            Kernel::V6_12.generator_flags(cfg),
            ["--all-symbols", "--absolute-percpu"]
        );
        let k73 = Kernel::parse("7.3").unwrap();
        assert_eq!(k73.generator_flags(cfg), ["--all-symbols", "--pc-relative"]);
        assert_eq!(
            k73.generator_flags("CONFIG_RELOCATABLE=y\n"),
            ["--pc-relative"]
        );
        assert!(k73
            .generator_flags("# CONFIG_64BIT is not set\n")
            .is_empty());
        assert_eq!(k73.rust_generator_format(), "--format=7.3");
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(at_least("17.0.1", "17.0.1"));
        assert!(at_least("18.1", "17.0.1"));
        assert!(!at_least("14.0.6", "17.0.1"));
        assert!(at_least("1.85.0", "1.85.0"));
        assert!(!at_least("1.78.0", "1.85.0"));
        assert!(at_least("2.40", "2.30.0"));
        assert_eq!(version_numbers("14.0.6-1"), [14, 0, 6]);
    }
}
