//! One test run of one cell (arch × config × source): build the kernel,
//! compute expectations, pack the initramfs, boot, and turn the guest's KTAP
//! into case results. The order of stages is the data flow of the harness;
//! each stage lives in its own module.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::accel::{self, AccelChoice};
use crate::arch::ArchProfile;
use crate::kbuild::{self, BuildRequest, Built};
use crate::ktap;
use crate::layout;
use crate::qemu::{self, Accel, Exit, Timeouts, VmOutcome, VmSpec};
use crate::report::{CaseResult, CellReport, Status};
use crate::source::KernelSource;

/// How the VM case's failure starts when the harness itself failed (not
/// the kernel): `bisect` aborts on it instead of skipping the commit.
pub const HARNESS_ERROR: &str = "harness error before or during boot: ";

/// Host-side cases every cell reports besides the guest probes.
pub const BUILD_CASE: (&str, &str) = ("build", "kernel");
pub const VM_CASE: (&str, &str) = ("boot", "vm-completed");

/// Every test name of an arch/config cell, in report order. Known without
/// building anything, so `--list` and filters need no kernel.
pub fn test_names(arch: &ArchProfile, config: &str) -> Vec<String> {
    let p = format!("{}/{config}", arch.name);
    let mut names = vec![
        format!("{p}/{}/{}", BUILD_CASE.0, BUILD_CASE.1),
        format!("{p}/{}/{}", VM_CASE.0, VM_CASE.1),
    ];
    for probe in ksh_proto::PROBES {
        for case in probe.cases {
            names.push(format!("{p}/{}/{case}", probe.name));
        }
    }
    names
}

/// One arch × config on one source.
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    pub arch: &'static ArchProfile,
    pub config: String,
    pub source: &'a KernelSource,
}

impl Cell<'_> {
    /// `ARCH/CONFIG`, the prefix of every test name of this cell.
    pub fn name(&self) -> String {
        format!("{}/{}", self.arch.name, self.config)
    }

    /// Every test name of the cell, in report order.
    pub fn test_names(&self) -> Vec<String> {
        test_names(self.arch, &self.config)
    }

    fn build_request(&self, jobs: usize) -> BuildRequest<'_> {
        BuildRequest {
            arch: self.arch,
            config: &self.config,
            source: self.source,
            jobs,
        }
    }

    /// The run dirs of this cell: one per invocation (see [`layout::new_run_dir`]).
    pub fn runs_dir(&self) -> PathBuf {
        layout::cache_root()
            .join("runs")
            .join(&self.source.key)
            .join(format!("{}-{}", self.arch.name, self.config))
    }

    /// The latest run's files (console log, results, command line): the
    /// `latest` link in [`Cell::runs_dir`].
    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir().join(layout::LATEST_RUN)
    }
}

/// Knobs of a run that do not change what is built.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub accel: AccelChoice,
    pub jobs: usize,
    /// On a baseline kernel, the cases listed in a probe's
    /// `baseline_failures` must fail (and pass in the report when they do).
    pub expect_baseline_failures: bool,
    /// Extra kernel command-line words for `/init` (see `VmSpec`).
    pub guest_params: Vec<String>,
    /// The VM's silence limit (default [`DEFAULT_SILENCE`]).
    pub silence_limit: Option<Duration>,
}

/// Longest stretch a VM may go without console or results output.
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(45);

/// Timing figures of a cell, for the summary line and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct CellTimes {
    pub build: Duration,
    pub ran_make: bool,
    pub boot_to_results: Option<Duration>,
    pub vm_total: Duration,
    pub accel: Option<&'static str>,
}

/// Builds the kernel of `cell` (used by `cargo xtask build` too).
pub fn build_kernel(cell: &Cell, jobs: usize) -> Result<Built> {
    kbuild::build(&cell.build_request(jobs))
}

fn cpus_for(built: &Built) -> u32 {
    let config = fs::read_to_string(built.dir.join(".config")).unwrap_or_default();
    if config.lines().any(|l| l == "CONFIG_SMP=y") {
        2
    } else {
        1
    }
}

/// Overall VM limit: boot allowance plus every probe's own timeout.
fn timeouts(first_output: Duration, silence: Duration) -> Timeouts {
    let probes: u64 = ksh_proto::PROBES
        .iter()
        .map(|p| u64::from(p.timeout_secs))
        .sum();
    Timeouts {
        first_output,
        silence,
        overall: Duration::from_secs(60 + probes),
    }
}

/// Boots with the chosen accelerator, falling back from a silent KVM to TCG
/// under `--accel auto`.
fn boot(
    cell: &Cell,
    built: &Built,
    initrd: PathBuf,
    run_dir: PathBuf,
    opts: &RunOptions,
) -> Result<VmOutcome> {
    let candidates = accel::candidates(opts.accel, cell.arch)?;
    let mut last = None;
    for (i, acc) in candidates.iter().enumerate() {
        let fallback_possible = i + 1 < candidates.len();
        let first_output = if *acc == Accel::Kvm && fallback_possible {
            accel::KVM_PROBE_SILENCE
        } else {
            Duration::from_secs(60)
        };
        let spec = VmSpec {
            arch: cell.arch,
            accel: *acc,
            kernel: built.image.clone(),
            initrd: initrd.clone(),
            cpus: cpus_for(built),
            run_dir: run_dir.clone(),
            qmp_socket: qemu::qmp_socket_path(&cell.name()),
            timeouts: timeouts(first_output, opts.silence_limit.unwrap_or(DEFAULT_SILENCE)),
            guest_params: opts.guest_params.clone(),
        };
        let outcome = qemu::run(&spec)?;
        if *acc == Accel::Kvm && opts.accel == AccelChoice::Auto {
            accel::remember(cell.arch, outcome.console_spoke);
            if !outcome.console_spoke && fallback_possible {
                // Say what QEMU actually did: an abort in 0.1 s is not a
                // silent guest.
                let what = match &outcome.exit {
                    Exit::QemuFailed { status, stderr } => format!(
                        "QEMU with KVM exited ({status}) after {}: {}",
                        crate::proc::fmt_duration(outcome.elapsed),
                        stderr.lines().next().unwrap_or("").trim()
                    ),
                    _ => format!(
                        "KVM printed nothing in {}",
                        crate::proc::fmt_duration(outcome.elapsed)
                    ),
                };
                eprintln!(
                    "ksh: {}: {what}; falling back to TCG (verdict kept in {})",
                    cell.name(),
                    accel::verdict_path().display()
                );
                last = Some(outcome);
                continue;
            }
        }
        return Ok(outcome);
    }
    Ok(last.expect("at least one accelerator candidate"))
}

/// Runs one cell end to end. Faults of the system under test (build
/// failure, panic, hang) become failed cases; faults of the harness itself
/// are errors.
pub fn run_cell(cell: &Cell, opts: &RunOptions) -> Result<(CellReport, CellTimes)> {
    let started = Instant::now();
    let prefix = cell.name();
    let mut cases = Vec::new();
    let mut times = CellTimes::default();
    let names = cell.test_names();
    let fail_rest = |cases: &mut Vec<CaseResult>, why: &str| {
        for n in &names {
            if !cases.iter().any(|c: &CaseResult| &c.name == n) {
                cases.push(CaseResult {
                    name: n.clone(),
                    status: Status::Fail(format!("not run: {why}")),
                });
            }
        }
    };
    let build_name = format!("{prefix}/{}/{}", BUILD_CASE.0, BUILD_CASE.1);
    let built = match build_kernel(cell, opts.jobs) {
        Ok(b) => b,
        Err(e) => {
            cases.push(CaseResult {
                name: build_name,
                status: Status::Fail(layout::describe_error(&e)),
            });
            fail_rest(&mut cases, "the kernel build failed");
            return Ok((
                CellReport {
                    cell: prefix,
                    cases,
                    elapsed: started.elapsed(),
                },
                times,
            ));
        }
    };
    times.build = built.elapsed;
    times.ran_make = built.ran_make;
    cases.push(CaseResult {
        name: build_name,
        status: Status::Pass,
    });

    // A fault of the harness from here on (an unreadable vmlinux, a full
    // disk, QEMU that cannot start) fails this cell's cases; the other cells
    // still run.
    let outcome = match boot_built(cell, &built, opts) {
        Ok(o) => o,
        Err(e) => {
            cases.push(CaseResult {
                name: format!("{prefix}/{}/{}", VM_CASE.0, VM_CASE.1),
                status: Status::Fail(format!("{HARNESS_ERROR}{}", layout::describe_error(&e))),
            });
            fail_rest(&mut cases, "the harness could not boot this cell");
            return Ok((
                CellReport {
                    cell: prefix,
                    cases,
                    elapsed: started.elapsed(),
                },
                times,
            ));
        }
    };
    times.boot_to_results = outcome.boot_to_results;
    times.vm_total = outcome.elapsed;
    times.accel = Some(outcome.accel.name());
    cases.extend(case_results(cell, &outcome, opts.expect_baseline_failures));
    Ok((
        CellReport {
            cell: prefix,
            cases,
            elapsed: started.elapsed(),
        },
        times,
    ))
}

/// Expectations, initramfs and the VM run of a built cell.
fn boot_built(cell: &Cell, built: &Built, opts: &RunOptions) -> Result<VmOutcome> {
    let init = crate::guestbin::build_init(cell.arch)?;
    let init_bytes = fs::read(&init).with_context(|| format!("reading {}", init.display()))?;
    let files = crate::expect::guest_files(cell.arch, built)?;
    let initrd = built.dir.join("ksh-initramfs.cpio.gz");
    crate::initramfs::write(&initrd, &init_bytes, &files)?;

    // Each invocation has its own run dir; same-cell runs from two
    // processes still take turns on the VM (two TCG guests on a small host
    // would push each other past the probes' timeouts).
    let _run_lock = layout::lock(&cell.runs_dir().with_extension("lock"))?;
    let run_dir = layout::new_run_dir(&cell.runs_dir())?;
    boot(cell, built, initrd, run_dir, opts)
}

/// Maps the VM's outcome and KTAP stream onto the cell's cases.
pub fn case_results(
    cell: &Cell,
    outcome: &VmOutcome,
    expect_baseline_failures: bool,
) -> Vec<CaseResult> {
    let prefix = cell.name();
    let report = ktap::parse(&outcome.results, ksh_proto::COMPLETION_RECORD);
    let where_to_look = outcome.where_to_look();
    let mut out = Vec::new();

    // The VM-level case: did the guest run to completion and stop cleanly?
    let mut problems = Vec::new();
    match &outcome.exit {
        Exit::PoweredOff | Exit::Reset => {}
        Exit::Panic { excerpt } => problems.push(format!("kernel panic:\n{excerpt}")),
        Exit::Timeout { what } => problems.push(format!("timeout: {what}")),
        Exit::QemuFailed { status, stderr } => {
            problems.push(format!("QEMU failed ({status}):\n{}", stderr.trim()))
        }
        Exit::Interrupted => problems.push("interrupted".into()),
    }
    if report.completion.is_none() {
        problems
            .push("the result stream has no completion record: the guest crashed or hung".into());
    }
    for e in &report.errors {
        problems.push(format!(
            "malformed result stream, line {}: {}: {:?}",
            e.line_no, e.message, e.line
        ));
    }
    let vm_name = format!("{prefix}/{}/{}", VM_CASE.0, VM_CASE.1);
    let vm_status = if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail(format!(
            "{}\naccelerator: {}\n{where_to_look}",
            problems.join("\n"),
            outcome.accel.name()
        ))
    };
    let vm_ok = vm_status == Status::Pass;
    out.push(CaseResult {
        name: vm_name,
        status: vm_status,
    });

    for probe in ksh_proto::PROBES {
        for case in probe.cases {
            let name = format!("{prefix}/{}/{case}", probe.name);
            let status = match report.find(&[probe.name, case]) {
                Some(r) => match r.outcome {
                    ktap::Outcome::Pass | ktap::Outcome::Xfail => Status::Pass,
                    ktap::Outcome::Skip => {
                        Status::Skip(r.directive_reason.clone().unwrap_or_default())
                    }
                    ktap::Outcome::Fail | ktap::Outcome::Timeout | ktap::Outcome::Todo => {
                        let mut msg = r.diagnostics.join("\n");
                        if r.outcome == ktap::Outcome::Timeout {
                            msg.push_str(&format!(
                                "\nTIMEOUT: {}",
                                r.directive_reason.clone().unwrap_or_default()
                            ));
                        }
                        Status::Fail(format!("{}\n{where_to_look}", msg.trim()))
                    }
                },
                None if vm_ok => Status::Fail(format!(
                    "the guest reported no result for this case\n{where_to_look}"
                )),
                None => Status::Fail(format!(
                    "not run: the VM did not complete (see {vm})\n{where_to_look}",
                    vm = VM_CASE.1
                )),
            };
            let status = if expect_baseline_failures && probe.baseline_failures.contains(case) {
                invert_for_baseline(status, vm_ok, &where_to_look)
            } else {
                status
            };
            out.push(CaseResult { name, status });
        }
    }
    out
}

/// A case that must fail on the baseline kernel: its failure is the pass.
/// It only counts when the VM completed, so a crash is never a pass.
fn invert_for_baseline(status: Status, vm_ok: bool, where_to_look: &str) -> Status {
    match status {
        Status::Fail(_) if vm_ok => Status::Pass,
        Status::Fail(msg) => Status::Fail(msg),
        Status::Pass => Status::Fail(format!(
            "passed on the baseline (unpatched) kernel, where it must fail: the probe no longer detects size-blind lookups\n{where_to_look}"
        )),
        // Not applicable to this config (e.g. no kprobes): nothing was checked
        // either way, so it stays a skip.
        Status::Skip(why) => Status::Skip(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::X86_64;

    fn cell(source: &KernelSource) -> Cell<'_> {
        Cell {
            arch: &X86_64,
            config: "minimal".into(),
            source,
        }
    }

    fn source() -> KernelSource {
        KernelSource {
            tree: PathBuf::from("/src"),
            key: "k".into(),
            describe: "d".into(),
            patched: true,
        }
    }

    fn outcome(exit: Exit, results: &str) -> VmOutcome {
        VmOutcome {
            exit,
            accel: Accel::Tcg,
            results: results.into(),
            run_dir: PathBuf::from("/runs/x"),
            console_log: PathBuf::from("/runs/x/console.log"),
            cmdline: "qemu".into(),
            console_spoke: true,
            boot_to_results: None,
            elapsed: Duration::from_secs(1),
        }
    }

    /// A complete stream in which every case passes, except `failing`.
    fn stream(failing: &[(&str, &str)]) -> String {
        let mut s = format!("KTAP version 1\n1..{}\n", ksh_proto::PROBES.len());
        for (i, p) in ksh_proto::PROBES.iter().enumerate() {
            s.push_str(&format!(
                "    KTAP version 1\n    # Subtest: {}\n    1..{}\n",
                p.name,
                p.cases.len()
            ));
            let mut all_ok = true;
            for (j, c) in p.cases.iter().enumerate() {
                if failing.contains(&(p.name, c)) {
                    all_ok = false;
                    s.push_str(&format!(
                        "    # expected 0x10, got 0x20\n    not ok {} {c}\n",
                        j + 1
                    ));
                } else {
                    s.push_str(&format!("    ok {} {c}\n", j + 1));
                }
            }
            s.push_str(&format!(
                "{} {} {}\n",
                if all_ok { "ok" } else { "not ok" },
                i + 1,
                p.name
            ));
        }
        s.push_str(&ksh_proto::completion_record(ksh_proto::PROBES.len()));
        s.push('\n');
        s
    }

    fn status_of<'a>(cases: &'a [CaseResult], suffix: &str) -> &'a Status {
        &cases
            .iter()
            .find(|c| c.name.ends_with(suffix))
            .unwrap_or_else(|| panic!("no case {suffix}"))
            .status
    }

    #[test]
    fn clean_run_passes_every_case() {
        let src = source();
        let cases = case_results(&cell(&src), &outcome(Exit::PoweredOff, &stream(&[])), false);
        assert_eq!(
            cases.len(),
            test_names(&X86_64, "minimal").len() - 1,
            "all but build/kernel"
        );
        assert!(cases.iter().all(|c| c.status == Status::Pass), "{cases:#?}");
    }

    #[test]
    fn failing_case_carries_diagnostics_and_log_paths() {
        let src = source();
        let cases = case_results(
            &cell(&src),
            &outcome(Exit::PoweredOff, &stream(&[("proc-kallsyms", "addresses")])),
            false,
        );
        let Status::Fail(msg) = status_of(&cases, "/proc-kallsyms/addresses") else {
            panic!()
        };
        assert!(
            msg.contains("expected 0x10, got 0x20") && msg.contains("/runs/x/console.log"),
            "{msg}"
        );
        assert_eq!(status_of(&cases, "/boot/vm-completed"), &Status::Pass);
    }

    #[test]
    fn panic_fails_the_vm_case_and_marks_the_rest_not_run() {
        let src = source();
        let partial = "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: boot\n    1..2\n    ok 1 init-ran\n";
        let exit = Exit::Panic {
            excerpt: "Kernel panic - not syncing: Attempted to kill init!".into(),
        };
        let cases = case_results(&cell(&src), &outcome(exit, partial), false);
        let Status::Fail(msg) = status_of(&cases, "/boot/vm-completed") else {
            panic!()
        };
        assert!(
            msg.contains("Attempted to kill init") && msg.contains("no completion record"),
            "{msg}"
        );
        assert_eq!(
            status_of(&cases, "/boot/init-ran"),
            &Status::Pass,
            "a reported result is kept"
        );
        let Status::Fail(msg) = status_of(&cases, "/proc-kallsyms/format") else {
            panic!()
        };
        assert!(msg.starts_with("not run"), "{msg}");
    }

    #[test]
    fn hang_is_a_failure_never_a_pass() {
        let src = source();
        let cases = case_results(
            &cell(&src),
            &outcome(
                Exit::Timeout {
                    what: "no output for 45 s".into(),
                },
                "",
            ),
            false,
        );
        assert!(
            cases.iter().all(|c| matches!(c.status, Status::Fail(_))),
            "{cases:#?}"
        );
    }

    #[test]
    fn malformed_stream_fails_the_vm_case() {
        let src = source();
        let mut s = stream(&[]);
        s = s.replacen("    ok 1 init-ran", "    ok one init-ran", 1);
        let cases = case_results(&cell(&src), &outcome(Exit::PoweredOff, &s), false);
        let Status::Fail(msg) = status_of(&cases, "/boot/vm-completed") else {
            panic!("{cases:#?}")
        };
        assert!(msg.contains("malformed result stream"), "{msg}");
    }

    #[test]
    fn baseline_inversion_only_touches_listed_cases_of_completed_runs() {
        let vm = "/tmp/x";
        assert_eq!(
            invert_for_baseline(Status::Fail("size differs".into()), true, vm),
            Status::Pass
        );
        assert!(
            matches!(invert_for_baseline(Status::Pass, true, vm), Status::Fail(m) if m.contains("must fail"))
        );
        assert!(matches!(
            invert_for_baseline(Status::Fail("x".into()), false, vm),
            Status::Fail(_)
        ));
    }
}
