//! The mutant rule (`cargo xtask mutants`): a known-bad kernel is caught
//! only by the verdicts of its own must-fail cases, as the judge gave them
//! (count line N > 0 of M > 0, a `build/...` case through its own check,
//! never `Status::NotRun`); else it is missed or broken. Pure: the cell's
//! judged cases and counts in, a [`Verdict`] out.

use serde::{Deserialize, Serialize};

use super::CaseCount;
use crate::cell::{CellId, Status, TestName};
use crate::kernel::mutants::{MutantRule, MAKE_FAILED};
use crate::results::report::CaseResult;
use crate::vm::qemu::Exit;

/// What became of one mutant in one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every must-fail case failed with its own verdict (each with it).
    Caught(Vec<String>),
    /// A must-fail case did not fail (passed, skipped), or a declared
    /// crash did not happen: a probe to strengthen.
    Missed(Vec<String>),
    /// The mutant did not get judged by its cases: it does not apply or
    /// build, crashes or hangs the kernel where it should not, or a
    /// must-fail case failed some other way (no count line, not run).
    Broken(String),
}

/// The first line of a message, cut to 160 characters.
fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("").trim();
    match l.char_indices().nth(160) {
        Some((i, _)) => format!("{}...", &l[..i]),
        None => l.to_string(),
    }
}

/// Judges mutant `m` (its rule on the arch of `cell`) from the cell's
/// results: `cases` (full names under `cell`), the count lines the guest reported, and how the VM stopped
/// (None: it never ran).
///
/// - A build mutant (its must-fail cases are all `build/...`) whose kernel
///   did not build is caught only when each of those cases failed with its
///   own verdict (`build/generators-agree` through the link's disagreement
///   marker); "not run" because the build failed some other way is broken.
/// - Otherwise the kernel must build and `boot/vm-completed` must pass,
///   unless the mutant declares `crashes: TEXT`: then the VM must stop with
///   a kernel panic whose excerpt contains TEXT.
/// - Each must-fail probe case must fail with its count line, N > 0 of
///   M > 0 mismatched (or, on a declared crash, not have run because of
///   it); a `build/...` case must fail with its own verdict.
pub fn judge_mutant(
    m: &MutantRule,
    cell: &CellId,
    cases: &[CaseResult],
    counts: &[CaseCount],
    vm_exit: Option<&Exit>,
) -> Verdict {
    let status = |c: &str| {
        let (probe, case) = c.split_once('/')?;
        let full = TestName::new(cell, probe, case).to_string();
        cases.iter().find(|r| r.name == full).map(|r| &r.status)
    };
    let (build_probe, build_case) = super::BUILD_CASE;
    match status(&format!("{build_probe}/{build_case}")) {
        Some(Status::Pass) => {}
        Some(s) => {
            let why = first_line(&s.failure().unwrap_or_default());
            if !m.build_mutant {
                return Verdict::Broken(format!("the kernel does not build: {why}"));
            }
            let mut caught = Vec::new();
            let mut other = Vec::new();
            for c in &m.cases {
                match status(c) {
                    // The build case is caught only by make's own failure
                    // (a compile or link error), not by a harness error.
                    Some(Status::Fail { detail: msg, .. })
                        if c == &format!("{build_probe}/{build_case}")
                            && !msg.contains(MAKE_FAILED) =>
                    {
                        other.push(format!("{c}: not a failure of make: {}", first_line(msg)))
                    }
                    Some(Status::Fail { detail: msg, .. }) => {
                        caught.push(format!("{c} ({})", first_line(msg)))
                    }
                    Some(s) => other.push(format!(
                        "{c}: {}",
                        first_line(&s.failure().unwrap_or_else(|| format!("{s:?}")))
                    )),
                    None => other.push(format!("{c}: no result")),
                }
            }
            return if other.is_empty() {
                Verdict::Caught(caught)
            } else {
                Verdict::Broken(format!(
                    "the kernel does not build ({why}), and not through the check the mutant is about: {}",
                    other.join("; ")
                ))
            };
        }
        None => return Verdict::Broken("no build/kernel result".into()),
    }
    let (vm_probe, vm_case) = super::VM_CASE;
    let vm = status(&format!("{vm_probe}/{vm_case}"));
    let vm_why = vm
        .and_then(|s| s.failure())
        .map(|f| first_line(&f))
        .unwrap_or_else(|| "no result".into());
    let vm_passed = vm == Some(&Status::Pass);
    let crashed_as_declared = match (&m.crashes, vm_exit) {
        (None, _) if vm_passed => false,
        (None, Some(Exit::Panic { excerpt })) => {
            return Verdict::Broken(format!(
                "crashes the kernel (no `crashes:` line declares it): {}",
                ["Kernel panic", "BUG:", "Oops", "general protection fault"]
                    .iter()
                    .find_map(|w| excerpt.lines().find(|l| l.contains(w)))
                    .map(first_line)
                    .unwrap_or_else(|| first_line(excerpt))
            ))
        }
        (None, Some(Exit::Timeout { what })) => {
            return Verdict::Broken(format!("hangs the kernel: {}", first_line(what)))
        }
        (None, _) => return Verdict::Broken(format!("the VM did not complete: {vm_why}")),
        (Some(want), Some(Exit::Panic { excerpt })) if excerpt.contains(want.as_str()) => true,
        (Some(want), Some(Exit::Panic { excerpt })) => {
            return Verdict::Broken(format!(
                "crashes the kernel, but the panic does not show the declared {want:?}: {}",
                first_line(excerpt)
            ))
        }
        (Some(want), _) if vm_passed => {
            return Verdict::Missed(vec![format!(
                "the declared crash ({want:?}) did not happen: the VM completed"
            )])
        }
        (Some(want), _) => {
            return Verdict::Broken(format!(
                "the VM did not complete, but not by the declared crash ({want:?}): {vm_why}"
            ))
        }
    };
    let (mut caught, mut missed, mut broken) = (Vec::new(), Vec::new(), Vec::new());
    let mut skipped = Vec::new();
    for c in &m.cases {
        let count = counts
            .iter()
            .find(|n| format!("{}/{}", n.probe, n.case) == *c);
        match status(c) {
            Some(Status::Fail { detail: msg, .. }) if c.starts_with("build/") => {
                caught.push(format!("{c} ({})", first_line(msg)))
            }
            Some(Status::Fail { detail: msg, .. }) => match count {
                Some(n) if n.mismatched > 0 && n.checked > 0 => caught.push(format!(
                    "{c} ({} of {} mismatched)",
                    n.mismatched, n.checked
                )),
                Some(n) => broken.push(format!(
                    "{c} failed, but its count line says {} of {} mismatched: {}",
                    n.mismatched,
                    n.checked,
                    first_line(msg)
                )),
                None => broken.push(format!(
                    "{c} failed without its count line (the probe crashed, timed out or could not set up): {}",
                    first_line(msg)
                )),
            },
            Some(Status::NotRun(_)) if crashed_as_declared => {
                caught.push(format!("{c} (not run: the declared crash)"))
            }
            Some(Status::NotRun(why)) => broken.push(format!("{c} not run: {}", first_line(why))),
            Some(Status::Pass) | Some(Status::Measured(_)) => missed.push(format!("{c} passed")),
            // Declared not applicable to this cell (a skip anywhere else
            // fails the case): the mutant is judged by its other cases here.
            Some(Status::Skip(why)) => skipped.push(format!("{c} ({why})")),
            None => broken.push(format!("{c}: no result")),
        }
    }
    if caught.is_empty() && missed.is_empty() && broken.is_empty() {
        return Verdict::Broken(format!(
            "none of its cases applies to {cell}: {}",
            skipped.join("; ")
        ));
    }
    if !missed.is_empty() {
        missed.extend(broken);
        Verdict::Missed(missed)
    } else if !broken.is_empty() {
        Verdict::Broken(broken.join("; "))
    } else {
        Verdict::Caught(caught)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::mutants::must_fail_candidates;

    fn cell() -> CellId {
        CellId::new(
            &crate::cell::arch::X86_64,
            "minimal",
            crate::cell::Toolchain::Gcc,
            crate::cell::SourceKind::Patched,
        )
    }

    fn mutant(must_fail: &[&str], crashes: Option<&str>) -> MutantRule {
        crate::kernel::mutants::Mutant {
            name: "m".into(),
            description: "d".into(),
            must_fail: must_fail.iter().map(|s| s.to_string()).collect(),
            must_fail_on: Vec::new(),
            crashes: crashes.map(str::to_string),
            path: std::path::PathBuf::from("m.patch"),
        }
        .rule("x86_64")
    }

    use judge_mutant as judge;

    /// Every case of the cell passes except those in `set`.
    fn cases(set: &[(&str, Status)]) -> Vec<CaseResult> {
        let mut names: Vec<String> = super::super::BUILD_CASES
            .iter()
            .chain([&super::super::VM_CASE, &super::super::WARNINGS_CASE])
            .map(|(p, c)| format!("{p}/{c}"))
            .collect();
        names.extend(must_fail_candidates());
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| CaseResult {
                status: set
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, s)| s.clone())
                    .unwrap_or(Status::Pass),
                name: format!("{}/{n}", cell().name()),
            })
            .collect()
    }

    fn count(mismatched: u64, checked: u64) -> Vec<CaseCount> {
        vec![CaseCount {
            probe: "sizes",
            case: "start-size",
            mismatched,
            checked,
        }]
    }

    fn fail(s: &str) -> Status {
        Status::fail(s.into())
    }

    /// `v` is broken, and says `why`.
    fn assert_broken(v: &Verdict, why: &str) {
        assert!(matches!(v, Verdict::Broken(w) if w.contains(why)), "{v:?}");
    }

    /// `v` is missed, and its first reason says `why`.
    fn assert_missed(v: &Verdict, why: &str) {
        assert!(
            matches!(v, Verdict::Missed(w) if w[0].contains(why)),
            "{v:?}"
        );
    }

    fn not_run() -> Status {
        Status::NotRun("the VM did not complete (see boot/vm-completed)".into())
    }

    #[test]
    fn caught_only_by_its_own_counted_failure() {
        let m = mutant(&["sizes/start-size"], None);
        let c = cases(&[("sizes/start-size", fail("3 of 10 mismatched"))]);
        let v = judge(&m, &cell(), &c, &count(3, 10), Some(&Exit::PoweredOff));
        assert_eq!(
            v,
            Verdict::Caught(vec!["sizes/start-size (3 of 10 mismatched)".into()])
        );
        // Another case failing does not catch it.
        let c = cases(&[("format-pS/real-size", fail("1 of 10 mismatched"))]);
        let v = judge(&m, &cell(), &c, &[], Some(&Exit::PoweredOff));
        assert_missed(&v, "sizes/start-size passed");
        // A failure without its count line is no catch.
        let c = cases(&[("sizes/start-size", fail("probe process ended (signal: 11)"))]);
        let v = judge(&m, &cell(), &c, &[], Some(&Exit::PoweredOff));
        assert_broken(&v, "without its count line");
        let v = judge(&m, &cell(), &c, &count(0, 10), Some(&Exit::PoweredOff));
        assert_broken(&v, "0 of 10");
    }

    #[test]
    fn a_crash_or_hang_is_broken_unless_declared() {
        let m = mutant(&["sizes/start-size"], None);
        let c = cases(&[
            (
                "boot/vm-completed",
                fail("kernel panic:\nKernel panic - not syncing: Oops"),
            ),
            ("sizes/start-size", not_run()),
        ]);
        let panic = Exit::Panic {
            excerpt: "BUG: unable to handle page fault\nKernel panic - not syncing: Oops".into(),
        };
        let v = judge(&m, &cell(), &c, &[], Some(&panic));
        assert_broken(&v, "crashes the kernel");
        let hang = Exit::Timeout {
            what: "no output for 45 s".into(),
        };
        let v = judge(&m, &cell(), &c, &[], Some(&hang));
        assert_broken(&v, "hangs");
        // Declared: the crash must be the one declared.
        let declared = mutant(&["sizes/start-size"], Some("unable to handle page fault"));
        let v = judge(&declared, &cell(), &c, &[], Some(&panic));
        assert!(matches!(v, Verdict::Caught(_)), "{v:?}");
        let other = mutant(&["sizes/start-size"], Some("general protection fault"));
        let v = judge(&other, &cell(), &c, &[], Some(&panic));
        assert_broken(&v, "general protection fault");
        let v = judge(&declared, &cell(), &c, &[], Some(&hang));
        assert!(matches!(v, Verdict::Broken(_)), "{v:?}");
        let v = judge(
            &declared,
            &cell(),
            &cases(&[]),
            &[],
            Some(&Exit::PoweredOff),
        );
        assert_missed(&v, "did not happen");
    }

    #[test]
    fn a_case_declared_not_applicable_here_is_left_to_other_cells() {
        let m = mutant(&["sizes/start-size", "kallsyms-selftest/verdict"], None);
        let c = cases(&[
            ("sizes/start-size", fail("3 of 10 mismatched")),
            (
                "kallsyms-selftest/verdict",
                Status::Skip("CONFIG_KALLSYMS_SELFTEST is not set".into()),
            ),
        ]);
        let v = judge(&m, &cell(), &c, &count(3, 10), Some(&Exit::PoweredOff));
        assert!(matches!(v, Verdict::Caught(ref w) if w.len() == 1), "{v:?}");
        // Not one of its cases applies: nothing shows it here.
        let m = mutant(&["kallsyms-selftest/verdict"], None);
        let v = judge(&m, &cell(), &c, &[], Some(&Exit::PoweredOff));
        assert_broken(&v, "none of its cases applies");
    }

    #[test]
    fn a_mutant_that_does_not_compile_is_caught_by_make_failing() {
        let m = mutant(&["build/kernel"], None);
        let c = cases(&[(
            "build/kernel",
            fail("x86_64/minimal: make failed (exit status: 2) after 17.8s"),
        )]);
        let v = judge(&m, &cell(), &c, &[], None);
        assert!(matches!(v, Verdict::Caught(_)), "{v:?}");
        // A harness error around the build is no catch.
        let c = cases(&[(
            "build/kernel",
            fail("cannot create /x/build: Permission denied"),
        )]);
        let v = judge(&m, &cell(), &c, &[], None);
        assert_broken(&v, "not a failure of make");
    }

    #[test]
    fn a_build_mutant_is_caught_only_by_its_marker() {
        let m = mutant(&["build/generators-agree"], None);
        let marker = fail("the link stopped: the C and Rust generators wrote different tables");
        let c = cases(&[
            ("build/kernel", fail("make failed")),
            ("build/generators-agree", marker),
            (
                "build/link-stable",
                Status::NotRun("the kernel build failed".into()),
            ),
        ]);
        let v = judge(&m, &cell(), &c, &[], None);
        assert!(
            matches!(v, Verdict::Caught(ref w) if w[0].contains("the link stopped")),
            "{v:?}"
        );
        // The build failed some other way: generators-agree not run.
        let c = cases(&[
            ("build/kernel", fail("make failed: error: expected ';'")),
            (
                "build/generators-agree",
                Status::NotRun("the kernel build failed".into()),
            ),
        ]);
        let v = judge(&m, &cell(), &c, &[], None);
        assert_broken(&v, "not through the check");
        // A probe mutant whose kernel does not build is broken.
        let p = mutant(&["sizes/start-size"], None);
        let v = judge(&p, &cell(), &c, &[], None);
        assert_broken(&v, "does not build");
        // Built, and the check after the build failed: caught.
        let c = cases(&[("build/generators-agree", fail("fixture x: differ"))]);
        let v = judge(&m, &cell(), &c, &[], Some(&Exit::PoweredOff));
        assert!(matches!(v, Verdict::Caught(_)), "{v:?}");
    }
}
