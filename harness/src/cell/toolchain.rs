//! The compiler a kernel is built with: GCC (the default, with the
//! arch's `CROSS_COMPILE` binutils) or LLVM (`LLVM=1`: clang, ld.lld and
//! llvm-nm from Debian; an arm64 cross build is clang's `--target`, which
//! Kbuild derives from `ARCH`).
//!
//! The toolchain is a dimension of a cell ([`crate::cell::CellId`]), whose
//! config *label* carries it into every visible name: `minimal` is the
//! `minimal` variant built with GCC, `minimal-llvm` the same variant built
//! with LLVM (`CellId::label`). The variant alone picks the Kconfig
//! fragments.

use std::fmt;
use std::str::FromStr;

use crate::cell::arch::ArchProfile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Toolchain {
    Gcc,
    Llvm,
}

impl Toolchain {
    pub const ALL: [Toolchain; 2] = [Toolchain::Gcc, Toolchain::Llvm];

    pub fn name(self) -> &'static str {
        match self {
            Toolchain::Gcc => "gcc",
            Toolchain::Llvm => "llvm",
        }
    }

    /// The `make` variables that select the toolchain for `arch` (every
    /// make of a build dir, the external module's too, passes the same).
    pub fn make_vars(self, arch: &ArchProfile) -> Vec<String> {
        match self {
            Toolchain::Gcc if arch.cross_compile.is_empty() => Vec::new(),
            Toolchain::Gcc => vec![format!("CROSS_COMPILE={}", arch.cross_compile)],
            Toolchain::Llvm => vec!["LLVM=1".to_string()],
        }
    }

    /// The `nm` the link uses (`NM`), which writes the maps kallsyms is
    /// generated from.
    pub fn nm(self, arch: &ArchProfile) -> String {
        match self {
            Toolchain::Gcc => format!("{}nm", arch.cross_compile),
            Toolchain::Llvm => "llvm-nm".to_string(),
        }
    }

    /// The C compiler's command name for `arch` (what `CC=ccache ...` wraps).
    pub fn cc(self, arch: &ArchProfile) -> String {
        match self {
            Toolchain::Gcc => format!("{}gcc", arch.cross_compile),
            Toolchain::Llvm => "clang".to_string(),
        }
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Toolchain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Toolchain::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown toolchain '{s}'; valid: gcc, llvm"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!("llvm".parse::<Toolchain>(), Ok(Toolchain::Llvm));
        assert!("clang"
            .parse::<Toolchain>()
            .unwrap_err()
            .contains("gcc, llvm"));
    }

    #[test]
    fn make_vars() {
        use crate::cell::arch::{ARM64, X86_64};
        assert!(Toolchain::Gcc.make_vars(&X86_64).is_empty());
        assert_eq!(
            Toolchain::Gcc.make_vars(&ARM64),
            vec![format!("CROSS_COMPILE={}", ARM64.cross_compile)]
        );
        assert_eq!(Toolchain::Llvm.make_vars(&ARM64), vec!["LLVM=1"]);
        assert_eq!(Toolchain::Llvm.cc(&ARM64), "clang");
    }
}
