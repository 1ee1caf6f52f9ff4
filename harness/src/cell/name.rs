//! A test case's name, `KERNEL/ARCH/CONFIG/PROBE/CASE`
//! (`7.3/x86_64/minimal/sizes/start-size`): the cell's name
//! ([`CellId::name`]) and the case (the host's own cases use the probes
//! `build` and `boot`). Built and taken apart only here.

use std::fmt;

use super::id::{CellId, SourceKind};

// The host's own cases, as (probe, case): every cell reports them
// besides the guest probes' (`ksh_proto::PROBES`).

/// The kernel built.
pub const BUILD_CASE: (&str, &str) = ("build", "kernel");
/// Both kallsyms generators wrote the same tables in every link pass
/// (see `kernel::generator_check`).
pub const GENERATORS_CASE: (&str, &str) = ("build", "generators-agree");
/// The tables linked into vmlinux are those its own symbols give (see
/// `kernel::linkstable`).
pub const LINK_STABLE_CASE: (&str, &str) = ("build", "link-stable");
/// The cases a build decides (judged on the host, not from the guest's
/// stream).
pub const BUILD_CASES: [(&str, &str); 3] = [BUILD_CASE, GENERATORS_CASE, LINK_STABLE_CASE];
/// The guest ran to completion and the VM stopped cleanly.
pub const VM_CASE: (&str, &str) = ("boot", "vm-completed");
/// The console log has no unexplained kernel warning (see `bootlog`).
pub const WARNINGS_CASE: (&str, &str) = ("boot", "no-kernel-warnings");

/// One case of one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestName {
    pub cell: CellId,
    pub probe: String,
    pub case: String,
}

impl TestName {
    pub fn new(cell: &CellId, probe: &str, case: &str) -> TestName {
        TestName {
            cell: cell.clone(),
            probe: probe.to_string(),
            case: case.to_string(),
        }
    }

    /// Takes a name apart. Names do not show the source (one run has one),
    /// so the caller says which. None unless it has exactly four non-empty
    /// parts and names a known kernel line and arch.
    pub fn parse(name: &str, source: SourceKind) -> Option<TestName> {
        let mut p = name.rsplitn(3, '/');
        let (Some(case), Some(probe), Some(cell)) = (p.next(), p.next(), p.next()) else {
            return None;
        };
        if case.is_empty() || probe.is_empty() {
            return None;
        }
        Some(TestName {
            cell: CellId::parse_name(cell, source)?,
            probe: probe.to_string(),
            case: case.to_string(),
        })
    }

    /// `PROBE/CASE`: the case, the same in every cell.
    pub fn probe_case(&self) -> String {
        format!("{}/{}", self.probe, self.case)
    }

    /// `KERNEL/ARCH/CONFIG/PROBE`: the JUnit class.
    pub fn class(&self) -> String {
        format!("{}/{}", self.cell.name(), self.probe)
    }
}

impl fmt::Display for TestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cell.name(), self.probe, self.case)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::arch::{ARM64, X86_64};
    use crate::cell::{Kernel, Toolchain};

    #[test]
    fn test_names_round_trip() {
        let s = SourceKind::Patched;
        let t = TestName::parse("7.3/x86_64/minimal/sizes/start-size", s).unwrap();
        assert_eq!(
            (t.cell.clone(), t.probe.as_str(), t.case.as_str()),
            (
                CellId::new(&X86_64, "minimal", Toolchain::Gcc, s).of_kernel(Kernel::mainline()),
                "sizes",
                "start-size"
            )
        );
        assert_eq!(t.to_string(), "7.3/x86_64/minimal/sizes/start-size");
        assert_eq!(t.class(), "7.3/x86_64/minimal/sizes");
        assert_eq!(t.probe_case(), "sizes/start-size");
        let llvm = CellId::new(&ARM64, "kaslr", Toolchain::Llvm, SourceKind::Baseline);
        let n = TestName::new(&llvm, "boot", "vm-completed");
        assert_eq!(n.to_string(), "6.12/arm64/kaslr-llvm/boot/vm-completed");
        assert_eq!(
            TestName::parse(&n.to_string(), SourceKind::Baseline),
            Some(n)
        );
        assert!(TestName::parse("6.12/x86_64/minimal/sizes", s).is_none());
        // A name from before kernels were a dimension is not a name now.
        assert!(TestName::parse("x86_64/minimal/sizes/start-size", s).is_none());
        assert!(TestName::parse("a/b/c/d/e", s).is_none());
        assert!(TestName::parse("6.12/x86_64//c/d", s).is_none());
        assert!(TestName::parse("6.12/x86_64/minimal/c/", s).is_none());
        assert!(TestName::parse("6.12/riscv/minimal/c/d", s).is_none());
    }
}
