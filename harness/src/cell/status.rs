//! A case's outcome, and why a failure failed.

/// Who a failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The case was judged and failed: the kernel under test (its build,
    /// its boot, a probe's answer) is at fault.
    Kernel,
    /// The harness itself failed before or during the boot (an unreadable
    /// vmlinux, a full disk, QEMU that cannot start): nothing was learnt
    /// about the kernel. `cargo xtask bisect` aborts on it instead of
    /// skipping the commit.
    Harness,
}

/// Outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Failed, with what to show (diagnostics, log paths) and whose fault
    /// it is ([`FailKind`]).
    Fail {
        kind: FailKind,
        detail: String,
    },
    /// Never judged, because an earlier step failed (the build, the
    /// harness, the VM), with why. A failure wherever verdicts are counted,
    /// but never evidence that the case detects anything: `cargo xtask
    /// mutants` does not accept it as a must-fail case's failure.
    NotRun(String),
    /// Produced a figure and checked nothing (a timing,
    /// `ksh_proto::UNCOUNTED_CASES`): libtest has no such state outside
    /// `--bench`, so it passes there, labelled `[measured]`; the figure is
    /// shown in the summary and the JUnit file.
    Measured(String),
    /// Not applicable to this kernel, with the reason.
    Skip(String),
}

/// How a harness failure's message starts (see [`FailKind::Harness`]).
const HARNESS_FAILURE: &str = "harness error before or during boot: ";

impl Status {
    /// A failure of the kernel under test (see [`FailKind::Kernel`]).
    pub fn fail(detail: String) -> Status {
        Status::Fail {
            kind: FailKind::Kernel,
            detail,
        }
    }

    /// A failure of the harness (see [`FailKind::Harness`]).
    pub fn harness_fail(detail: String) -> Status {
        Status::Fail {
            kind: FailKind::Harness,
            detail,
        }
    }

    /// What a failed or not-run case shows; None for the other states.
    pub fn failure(&self) -> Option<String> {
        match self {
            Status::Fail {
                kind: FailKind::Kernel,
                detail,
            } => Some(detail.clone()),
            Status::Fail {
                kind: FailKind::Harness,
                detail,
            } => Some(format!("{HARNESS_FAILURE}{detail}")),
            Status::NotRun(why) => Some(format!("not run: {why}")),
            _ => None,
        }
    }

    /// Failed or not run: the states that fail a run.
    pub fn is_failure(&self) -> bool {
        matches!(self, Status::Fail { .. } | Status::NotRun(_))
    }

    /// The failure's kind; None unless the case failed.
    pub fn fail_kind(&self) -> Option<FailKind> {
        match self {
            Status::Fail { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_of_a_failure_is_typed_and_shown_as_before() {
        let h = Status::harness_fail("no space left on device".into());
        assert_eq!(h.fail_kind(), Some(FailKind::Harness));
        assert_eq!(
            h.failure().unwrap(),
            "harness error before or during boot: no space left on device"
        );
        let k = Status::fail("kernel panic".into());
        assert_eq!(k.fail_kind(), Some(FailKind::Kernel));
        assert_eq!(k.failure().unwrap(), "kernel panic");
        let n = Status::NotRun("the kernel build failed".into());
        assert_eq!(n.fail_kind(), None);
        assert!(n.is_failure() && h.is_failure() && !Status::Pass.is_failure());
        assert_eq!(n.failure().unwrap(), "not run: the kernel build failed");
    }
}
