//! One test run of one cell (arch × config × source): build the kernel,
//! compute expectations, pack the initramfs, boot, and turn the guest's KTAP
//! into case results. The order of stages is the data flow of the harness;
//! each stage lives in its own module.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ksh_proto::files::BuildInfo;

use crate::kernel::kbuild::{self, BuildRequest, Built};
use crate::kernel::source::KernelSource;
use crate::layout;
use crate::results::ktap;
use crate::results::report::{CaseResult, CellReport, Status, TestName};
use crate::vm::accel::{self, AccelChoice};
use crate::vm::arch::ArchProfile;
use crate::vm::qemu::{self, Accel, Exit, Timeouts, VmOutcome, VmSpec};

/// How the VM case's failure starts when the harness itself failed (not
/// the kernel): `bisect` aborts on it instead of skipping the commit.
pub const HARNESS_ERROR: &str = "harness error before or during boot: ";

/// Host-side cases every cell reports besides the guest probes.
pub const BUILD_CASE: (&str, &str) = ("build", "kernel");
/// Both kallsyms generators wrote the same tables in every link pass
/// (see `kernel::generators`).
pub const GENERATORS_CASE: (&str, &str) = ("build", "generators-agree");
/// The tables linked into vmlinux are those its own symbols give (see
/// `kernel::linkstable`).
pub const LINK_STABLE_CASE: (&str, &str) = ("build", "link-stable");
/// The cases a build decides (judged on the host, not from the guest's
/// stream).
pub const BUILD_CASES: [(&str, &str); 3] = [BUILD_CASE, GENERATORS_CASE, LINK_STABLE_CASE];
pub const VM_CASE: (&str, &str) = ("boot", "vm-completed");
/// The console log has no unexplained kernel warning (see `bootlog`).
pub const WARNINGS_CASE: (&str, &str) = ("boot", "no-kernel-warnings");

/// Every test name of an arch/config cell, in report order. Known without
/// building anything, so `--list` and filters need no kernel.
pub fn test_names(arch: &ArchProfile, config: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (probe, case) in BUILD_CASES.into_iter().chain([VM_CASE, WARNINGS_CASE]) {
        names.push(case_name(arch, config, probe, case));
    }
    for probe in ksh_proto::PROBES {
        for case in probe.cases {
            names.push(case_name(arch, config, probe.name, case));
        }
    }
    names
}

/// The name of one case of a cell (see [`TestName`]).
pub fn case_name(arch: &ArchProfile, config: &str, probe: &str, case: &str) -> String {
    TestName {
        arch: arch.name,
        config,
        probe,
        case,
    }
    .to_string()
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

    /// The name of the cell's case `probe/case`.
    pub fn case_name(&self, (probe, case): (&str, &str)) -> String {
        case_name(self.arch, &self.config, probe, case)
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

    /// The command that boots this cell's kernel with a shell (`cargo
    /// xtask run`), for failure messages.
    pub fn explore_command(&self) -> String {
        let mut s = format!(
            "cargo xtask run --arch {} --config {}",
            self.arch.name, self.config
        );
        if self
            .source
            .key
            .starts_with(crate::kernel::source::USER_TREE_KEY_PREFIX)
        {
            s.push_str(&format!(
                " --kernel-tree {}",
                crate::proc::shell_word(&self.source.tree.to_string_lossy())
            ));
        } else if !self.source.patched {
            s.push_str(" --baseline");
        }
        s
    }

    /// The latest run's files (console log, results, command line): the
    /// `latest` link in [`Cell::runs_dir`].
    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir().join(layout::LATEST_RUN)
    }

    /// What the registry's `declared_in` scopes look at: the config
    /// variant and the kind of source.
    pub fn kind(&self) -> ksh_proto::CellKind<'_> {
        ksh_proto::CellKind {
            variant: crate::kernel::toolchain::Toolchain::of_label(&self.config).0,
            baseline: !self.source.patched,
            user_tree: self
                .source
                .key
                .starts_with(crate::kernel::source::USER_TREE_KEY_PREFIX),
        }
    }

    /// The cell's source and config in words, for messages.
    fn describe_kind(&self) -> String {
        let k = self.kind();
        let source = if k.user_tree {
            "a --kernel-tree"
        } else if k.baseline {
            "the baseline source"
        } else {
            "the patched source"
        };
        format!("config variant {} on {source}", k.variant)
    }
}

/// `status`, except that a SKIP of `probe/case` fails unless the registry
/// declares the case not applicable in this cell
/// (`ksh_proto::skip_declared`): a kernel that lost a feature its config
/// should have is a failure, not a skip.
pub fn declared_skip_only(cell: &Cell, (probe, case): (&str, &str), status: Status) -> Status {
    match status {
        Status::Skip(why) if !ksh_proto::skip_declared(probe, case, &cell.kind()) => {
            Status::Fail(format!(
                "skipped ({why}), but ksh_proto::APPLICABILITY does not declare {probe}/{case} not applicable in {}: this kernel lost a feature its config should have (an option no fragment pins, or a patch that stopped declaring it)",
                cell.describe_kind()
            ))
        }
        s => s,
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
    /// Copy the guest console to stderr as it arrives (`--console`).
    pub stream_console: bool,
    /// QEMU's gdbstub on this port; the guest waits for gdb and no VM
    /// limit applies (`--gdb`).
    pub gdb_port: Option<u16>,
    /// Boot with an instruction clock (`qemu::INSTRUCTION_CLOCK`): the
    /// bench's lookup cost in instructions. Needs TCG.
    pub instruction_clock: bool,
}

/// Below this much free space the run dir counts as full (a console log
/// or a results stream no longer fits).
const RUN_DIR_MIN_FREE: u64 = 256 * 1024;

/// Longest stretch a VM may go without console or results output.
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(45);

/// Figures of a cell (timings, items checked), for the summary line and
/// the benchmark.
#[derive(Debug, Clone, Default)]
pub struct CellTimes {
    pub build: Duration,
    pub ran_make: bool,
    pub boot_to_results: Option<Duration>,
    pub vm_total: Duration,
    pub accel: Option<&'static str>,
    /// The count line of every case that reported one, in registry order.
    pub counts: Vec<CaseCount>,
    /// Whether the run was judged as the baseline proof.
    pub baseline_proof: bool,
    /// The probes' time inside the guest (its `# ksh: probes took N ms`).
    pub guest_probes: Option<Duration>,
    /// How the VM stopped; None when it never ran (the build failed, or
    /// the harness failed before the boot).
    pub vm_exit: Option<Exit>,
    /// The figures of the cases that measure instead of checking
    /// (`ksh_proto::UNCOUNTED_CASES`): `(probe/case, figure line)`.
    pub measured: Vec<(String, String)>,
}

/// The guest's own figure for its probes, from the result stream.
pub fn guest_probes_time(results: &str) -> Option<Duration> {
    results.lines().find_map(|l| {
        let ms = l.strip_prefix("# ksh: probes took ")?.split(' ').next()?;
        ms.parse().ok().map(Duration::from_millis)
    })
}

/// What one case reported checking (its `ksh_proto::CHECKED_PREFIX` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseCount {
    pub probe: &'static str,
    pub case: &'static str,
    pub mismatched: u64,
    pub checked: u64,
}

/// The summary of items checked per probe: `probe M` (the most any of its
/// cases checked), and `case N of M WORD` for each case with mismatches
/// (WORD: `size-blind` in the baseline proof, else `mismatched`).
pub fn counts_summary(counts: &[CaseCount], baseline_proof: bool) -> String {
    let word = if baseline_proof {
        "size-blind"
    } else {
        "mismatched"
    };
    let mut parts: Vec<String> = Vec::new();
    for probe in ksh_proto::PROBES {
        let mine: Vec<&CaseCount> = counts.iter().filter(|c| c.probe == probe.name).collect();
        let Some(max) = mine.iter().map(|c| c.checked).max() else {
            continue;
        };
        let bad: Vec<String> = mine
            .iter()
            .filter(|c| c.mismatched > 0)
            .map(|c| format!("{} {} of {} {word}", c.case, c.mismatched, c.checked))
            .collect();
        parts.push(if bad.is_empty() {
            format!("{} {max}", probe.name)
        } else {
            format!("{} {max} ({})", probe.name, bad.join(", "))
        });
    }
    parts.join(", ")
}

/// Builds the kernel of `cell` (used by `cargo xtask build` too).
pub fn build_kernel(cell: &Cell, jobs: usize) -> Result<Built> {
    kbuild::build(&cell.build_request(jobs))
}

pub fn cpus_for(built: &Built) -> u32 {
    let config = fs::read_to_string(built.dir.join(".config")).unwrap_or_default();
    if config.lines().any(|l| l == "CONFIG_SMP=y") {
        2
    } else {
        1
    }
}

/// Overall VM limit: boot allowance plus every probe's own timeout for a
/// kernel of `symbols` symbols.
fn timeouts(first_output: Duration, silence: Duration, symbols: u64, scale: u32) -> Timeouts {
    let probes: Duration = ksh_proto::PROBES.iter().map(|p| p.timeout(symbols)).sum();
    Timeouts {
        first_output,
        silence,
        overall: Duration::from_secs(60) + probes * scale,
    }
}

/// The guest's probe timeouts are multiplied by `ksh.timeout_scale=N`
/// (the bench's instruction clock): so is the VM's overall limit.
fn timeout_scale(guest_params: &[String]) -> u32 {
    ksh_proto::cmdline_number(&guest_params.join(" "), ksh_proto::TIMEOUT_SCALE_PARAM)
        .unwrap_or(1)
        .clamp(1, 100) as u32
}

/// Boots with the chosen accelerator, falling back from a silent KVM to TCG
/// under `--accel auto`.
fn boot(
    cell: &Cell,
    built: &Built,
    initrd: PathBuf,
    run_dir: PathBuf,
    opts: &RunOptions,
    symbols: u64,
) -> Result<VmOutcome> {
    let candidates = accel::candidates(opts.accel, cell.arch)?;
    if opts.instruction_clock && candidates.contains(&Accel::Kvm) {
        anyhow::bail!("an instruction clock (QEMU's -icount) needs TCG: run with --accel tcg");
    }
    let mut last = None;
    for (i, acc) in candidates.iter().enumerate() {
        let fallback_possible = i + 1 < candidates.len();
        let first_output = if *acc == Accel::Kvm && fallback_possible {
            accel::KVM_PROBE_SILENCE
        } else {
            Duration::from_secs(60)
        };
        let mut spec = VmSpec {
            arch: cell.arch,
            accel: *acc,
            kernel: built.image.clone(),
            initrd: initrd.clone(),
            // The instruction clock counts every vCPU's instructions: with
            // two, a lookup loop's time doubled whenever the other vCPU was
            // not halted (x86_64/minimal: 54k or 100k ns per lookup, boot by
            // boot).
            cpus: if opts.instruction_clock {
                1
            } else {
                cpus_for(built)
            },
            memory_mib: qemu::memory_mib(cell.arch, symbols, &initrd),
            run_dir: run_dir.clone(),
            qmp_socket: qemu::qmp_socket_path(&cell.name()),
            qmp: crate::vm::qmp::QmpLimits::default(),
            timeouts: timeouts(
                first_output,
                opts.silence_limit.unwrap_or(DEFAULT_SILENCE),
                symbols,
                timeout_scale(&opts.guest_params),
            ),
            guest_params: opts.guest_params.clone(),
            console: if opts.stream_console {
                qemu::Console::Stream
            } else {
                qemu::Console::Log
            },
            gdb_port: None,
            instruction_clock: opts.instruction_clock,
        };
        if let Some(port) = opts.gdb_port {
            debug_session(&mut spec, built, port);
        }
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

/// Sets `spec` up for gdb: the stub on `port`, the guest halted until gdb
/// continues it, no KASLR (gdb's symbols are link-time addresses), the
/// console on stderr (the module's load address is printed there), no VM
/// limit (the user decides how long it takes); prints the gdb command.
pub fn debug_session(spec: &mut VmSpec, built: &Built, port: u16) {
    spec.gdb_port = Some(port);
    spec.guest_params.push("nokaslr".into());
    if spec.console == qemu::Console::Log {
        spec.console = qemu::Console::Stream;
    }
    let day = Duration::from_secs(24 * 3600);
    spec.timeouts = Timeouts {
        first_output: day,
        silence: day,
        overall: day,
    };
    eprintln!("{}", gdb_instructions(spec.arch, built, port));
}

/// The gdb command line for a guest halted on `port`, and how to add the
/// probe module's symbols.
pub fn gdb_instructions(arch: &ArchProfile, built: &Built, port: u16) -> String {
    let (gdb, gdb_package) = arch.gdb;
    let mut cmd = format!(
        "{gdb} -q {} -ex 'target remote 127.0.0.1:{port}'",
        crate::proc::shell_word(&built.vmlinux.to_string_lossy())
    );
    let scripts = built.dir.join("vmlinux-gdb.py");
    let scripts_note = if scripts.is_file() {
        cmd.push_str(&format!(
            " -ex 'add-auto-load-safe-path {}' -ex 'source {}'",
            built.dir.display(),
            scripts.display()
        ));
        "lx-symbols loads the probe module's symbols once it is loaded".to_string()
    } else {
        format!(
            "this config has no CONFIG_GDB_SCRIPTS (no {}), so no lx-* commands",
            scripts.display()
        )
    };
    let ko = built.dir.join("ksh-probe-module").join("ksh_probe.ko");
    let install = if crate::kernel::prereqs::on_path(gdb) {
        String::new()
    } else {
        format!(" (not installed: apt-get install {gdb_package})")
    };
    format!(
        "ksh: the guest waits for gdb on 127.0.0.1:{port}; in another terminal{install}:\n  {cmd}\n\
         ksh: then `continue`; {scripts_note}; the module's code address is printed on the console as\n\
         ksh:   {}<ADDR>  ->  in gdb: add-symbol-file {} 0x<ADDR>",
        ksh_proto::MODULE_TEXT_LINE,
        ko.display()
    )
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
                    status: Status::NotRun(why.to_string()),
                });
            }
        }
    };
    let build_name = cell.case_name(BUILD_CASE);
    let built = match build_kernel(cell, opts.jobs) {
        Ok(b) => b,
        Err(e) => {
            cases.push(CaseResult {
                name: build_name,
                status: Status::Fail(layout::describe_error(&e)),
            });
            let log = cell.build_request(opts.jobs).build_dir().join("build.log");
            if let Some(status) = crate::kernel::generators::judge_failed_build(&log) {
                cases.push(CaseResult {
                    name: cell.case_name(GENERATORS_CASE),
                    status,
                });
            }
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
    cases.push(CaseResult {
        name: cell.case_name(GENERATORS_CASE),
        status: declared_skip_only(
            cell,
            GENERATORS_CASE,
            crate::kernel::generators::judge_built(&built.dir),
        ),
    });
    cases.push(CaseResult {
        name: cell.case_name(LINK_STABLE_CASE),
        status: crate::kernel::linkstable::judge_built(&built.dir, cell.arch, built.toolchain),
    });

    // A fault of the harness from here on (an unreadable vmlinux, a full
    // disk, QEMU that cannot start) fails this cell's cases; the other cells
    // still run.
    let (outcome, build_info) = match boot_built(cell, &built, opts) {
        Ok(o) => o,
        Err(e) => {
            cases.push(CaseResult {
                name: cell.case_name(VM_CASE),
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
    times.guest_probes = guest_probes_time(&outcome.results);
    times.accel = Some(outcome.accel.name());
    times.vm_exit = Some(outcome.exit.clone());
    let judged = case_results(
        cell,
        &outcome,
        &Judgement {
            expect_baseline_failures: opts.expect_baseline_failures,
            build_info: &build_info,
        },
    );
    times.counts = judged.counts;
    times.measured = judged
        .cases
        .iter()
        .filter_map(|c| match &c.status {
            Status::Measured(figure) => Some((
                c.name
                    .strip_prefix(&format!("{prefix}/"))
                    .unwrap_or(&c.name)
                    .to_string(),
                figure.clone(),
            )),
            _ => None,
        })
        .collect();
    times.baseline_proof = opts.expect_baseline_failures;
    cases.extend(judged.cases);
    Ok((
        CellReport {
            cell: prefix,
            cases,
            elapsed: started.elapsed(),
        },
        times,
    ))
}

/// Expectations, initramfs and the VM run of a built cell; also the
/// build's `key=value` facts (for the registry's applicability rules).
fn boot_built(cell: &Cell, built: &Built, opts: &RunOptions) -> Result<(VmOutcome, BuildInfo)> {
    let (initrd, build_info) = prepare_guest(cell, built, &[], INITRAMFS)?;
    // Each invocation has its own run dir; same-cell runs from two
    // processes still take turns on the VM (two TCG guests on a small host
    // would push each other past the probes' timeouts).
    let _run_lock = layout::lock(&cell.runs_dir().with_extension("lock"))?;
    let run_dir = layout::new_run_dir(&cell.runs_dir())?;
    let symbols = build_info.symbols();
    Ok((
        boot(cell, built, initrd, run_dir, opts, symbols)?,
        build_info,
    ))
}

/// The test run's initramfs, in the build dir.
pub const INITRAMFS: &str = "ksh-initramfs.cpio";

/// Builds `/init`, computes the expectations (and the probe module) and
/// writes the initramfs `name` in the build dir with `extra` files too.
/// Returns its path and the build's `key=value` facts.
pub fn prepare_guest(
    cell: &Cell,
    built: &Built,
    extra: &[crate::payload::initramfs::GuestFile],
    name: &str,
) -> Result<(PathBuf, BuildInfo)> {
    let init = crate::payload::guestbin::build_init(cell.arch)?;
    let init_bytes = fs::read(&init).with_context(|| format!("reading {}", init.display()))?;
    let mut payload = crate::payload::expect::guest_files(cell.arch, built)?;
    payload.files.extend(extra.iter().cloned());
    let initrd = built.dir.join(name);
    crate::payload::initramfs::write(&initrd, &init_bytes, &payload.files)?;
    Ok((initrd, payload.build_info))
}

/// How a run's cases are judged.
#[derive(Debug, Clone, Copy)]
pub struct Judgement<'a> {
    /// The baseline proof: listed cases must fail with a count (see
    /// [`judge_baseline_case`]).
    pub expect_baseline_failures: bool,
    /// `key=value` lines of the build (`build-info.txt`), for
    /// the registry's `APPLICABILITY`: a SKIP is only allowed where it says
    /// the case does not apply.
    pub build_info: &'a BuildInfo,
}

/// The cases of a cell and what each reported checking.
#[derive(Debug, Clone)]
pub struct Judged {
    pub cases: Vec<CaseResult>,
    pub counts: Vec<CaseCount>,
}

/// The count line among a result's diagnostics, for `probe/case`.
fn count_of(r: &ktap::TestResult, probe: &'static str, case: &'static str) -> Option<CaseCount> {
    r.diagnostics
        .iter()
        .filter_map(|l| ksh_proto::parse_checked_line(l))
        .find(|c| c.probe == probe && c.case == case)
        .map(|c| CaseCount {
            probe,
            case,
            mismatched: c.mismatched,
            checked: c.checked,
        })
}

/// Maps the VM's outcome and KTAP stream onto the cell's cases.
pub fn case_results(cell: &Cell, outcome: &VmOutcome, judgement: &Judgement) -> Judged {
    let report = ktap::parse(&outcome.results, ksh_proto::COMPLETION_RECORD);
    let where_to_look = format!(
        "{}\nto explore: {}",
        outcome.where_to_look(),
        cell.explore_command()
    );
    let mut out = Vec::new();
    let mut counts = Vec::new();
    let info_fn = |k: &str| judgement.build_info.get(k).map(str::to_string);

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
    // QEMU writes the console log and the results into the run dir; on a
    // full filesystem they stop short and the guest only looks silent.
    let run_dir_full = layout::free_bytes(&outcome.run_dir).is_some_and(|b| b < RUN_DIR_MIN_FREE);
    if run_dir_full {
        problems.push(format!(
            "no space left on device in the run dir {} ({} bytes free): the console log and the results were cut short, so what follows is not the guest's fault",
            outcome.run_dir.display(),
            layout::free_bytes(&outcome.run_dir).unwrap_or(0)
        ));
    }
    if report.completion.is_none() {
        problems.push(if run_dir_full {
            "the result stream has no completion record (the run dir is full)".into()
        } else {
            "the result stream has no completion record: the guest crashed or hung".into()
        });
    }
    for e in &report.errors {
        problems.push(format!(
            "malformed result stream, line {}: {}: {:?}",
            e.line_no, e.message, e.line
        ));
    }
    let vm_name = cell.case_name(VM_CASE);
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
    out.push(CaseResult {
        name: cell.case_name(WARNINGS_CASE),
        status: warnings_status(outcome, &where_to_look),
    });

    for probe in ksh_proto::PROBES {
        for case in probe.cases {
            let name = cell.case_name((probe.name, case));
            let result = report.find(&[probe.name, case]);
            let count = result.and_then(|r| count_of(r, probe.name, case));
            if let Some(c) = &count {
                counts.push(c.clone());
            }
            let status = match result {
                Some(r) => {
                    let not_applicable =
                        ksh_proto::not_applicable(probe.name, case, cell.arch.name, &info_fn);
                    judge_case(probe.name, case, r, count.as_ref(), not_applicable)
                }
                None if vm_ok => {
                    Status::Fail("the guest reported no result for this case".to_string())
                }
                None => Status::NotRun(format!(
                    "the VM did not complete (see {}/{})",
                    VM_CASE.0, VM_CASE.1
                )),
            };
            let status = declared_skip_only(cell, (probe.name, case), status);
            let status =
                if judgement.expect_baseline_failures && probe.baseline_failures.contains(case) {
                    judge_baseline_case(status, result, count.as_ref(), vm_ok)
                } else {
                    status
                };
            let status = match status {
                Status::Fail(msg) => Status::Fail(format!("{}\n{where_to_look}", msg.trim())),
                s => s,
            };
            out.push(CaseResult { name, status });
        }
    }
    Judged { cases: out, counts }
}

/// `boot/no-kernel-warnings`: the console log, whatever became of the VM.
fn warnings_status(outcome: &VmOutcome, where_to_look: &str) -> Status {
    let console = match fs::read(&outcome.console_log) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            return Status::Fail(format!(
                "cannot read the console log {}: {e}",
                outcome.console_log.display()
            ))
        }
    };
    if console.trim().is_empty() {
        return Status::Fail(format!("the console log is empty\n{where_to_look}"));
    }
    let allow = match crate::results::bootlog::allow_list(&layout::project_root()) {
        Ok(a) => a,
        Err(e) => return Status::Fail(format!("{e:#}")),
    };
    let (bad, allowed) = crate::results::bootlog::unexplained(&console, &allow);
    if bad.is_empty() {
        return Status::Pass;
    }
    // The first line names the first warning: it is what a one-line
    // summary (the CI job summary, a terminal) shows.
    Status::Fail(format!(
        "{} kernel warning line(s) not explained by {} ({allowed} allowed), first: {}\n{}\n{where_to_look}",
        bad.len(),
        crate::results::bootlog::ALLOW_FILE,
        bad[0].trim(),
        bad.iter()
            .take(20)
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// The figure line of a measuring case (every key of
/// `ksh_proto::MEASUREMENT_KEYS` followed by a number), without its `# `.
fn measurement(r: &ktap::TestResult) -> Option<String> {
    r.diagnostics.iter().find_map(|l| {
        let l = l.trim().trim_start_matches('#').trim();
        ksh_proto::MEASUREMENT_KEYS
            .iter()
            .all(|k| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .is_some_and(|v| v.parse::<f64>().is_ok())
            })
            .then(|| l.to_string())
    })
}

/// One reported case, outside the baseline proof: a pass must have checked
/// something (its count line says M > 0 and no mismatch), a measuring case
/// must carry its figure (and is reported as measured), XFAIL fails, a
/// SKIP is only allowed where the registry declares the case not
/// applicable (and, by [`declared_skip_only`], only in the cells it names).
fn judge_case(
    probe: &str,
    case: &str,
    r: &ktap::TestResult,
    count: Option<&CaseCount>,
    not_applicable: Option<&str>,
) -> Status {
    let counted = ksh_proto::is_counted(probe, case);
    match r.outcome {
        ktap::Outcome::Pass if !counted => match measurement(r) {
            Some(figure) => Status::Measured(figure),
            None => Status::Fail(format!(
                "reported ok without its figure line (# {} ...): nothing was measured",
                ksh_proto::MEASUREMENT_KEYS
                    .iter()
                    .map(|k| format!("{k}N"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        },
        // An expected failure is a failure: the probes have no known bugs
        // to carry, and a kernel bug marked XFAIL would pass unseen.
        ktap::Outcome::Xfail => Status::Fail(format!(
            "reported XFAIL ({}): an expected failure is still a failure here",
            r.directive_reason.clone().unwrap_or_default()
        )),
        ktap::Outcome::Pass => match count {
            None => Status::Fail(format!(
                "reported ok without a count line ({} {probe}/{case} N of M mismatched): nothing shows it checked anything",
                ksh_proto::CHECKED_PREFIX
            )),
            Some(c) if c.checked == 0 => {
                Status::Fail("reported ok after checking 0 items: a vacuous pass".into())
            }
            Some(c) if c.mismatched > 0 => Status::Fail(format!(
                "reported ok, but its count says {} of {} mismatched",
                c.mismatched, c.checked
            )),
            Some(_) => Status::Pass,
        },
        ktap::Outcome::Skip => {
            let why = r.directive_reason.clone().unwrap_or_default();
            match not_applicable {
                Some(_) => Status::Skip(why),
                None => Status::Fail(format!(
                    "skipped ({why}), but the registry (ksh_proto::APPLICABILITY) declares this case applicable to this build: a skip here checks nothing"
                )),
            }
        }
        ktap::Outcome::Fail | ktap::Outcome::Timeout | ktap::Outcome::Todo => {
            let mut msg = r.diagnostics.join("\n");
            if r.outcome == ktap::Outcome::Timeout {
                msg.push_str(&format!(
                    "\nTIMEOUT: {}",
                    r.directive_reason.clone().unwrap_or_default()
                ));
            }
            Status::Fail(msg)
        }
    }
}

/// A case that must fail on the baseline kernel. Its failure is the pass
/// only when the probe ran to the end and reported a mismatch: the VM
/// completed, the result is a plain `not ok` (no timeout), its count line
/// says N > 0 of M > 0, and it carries diagnostics beyond the count. A
/// crash, timeout, setup error, missing expectations, a SKIP or a pass all
/// fail the proof, with the reason.
fn judge_baseline_case(
    status: Status,
    result: Option<&ktap::TestResult>,
    count: Option<&CaseCount>,
    vm_ok: bool,
) -> Status {
    let why = |reason: &str, detail: &str| {
        Status::Fail(format!(
            "baseline proof: {reason}; a listed case must run to the end and report size-blind answers\n{}",
            detail.trim()
        ))
    };
    let detail = match &status {
        Status::Fail(m) | Status::Skip(m) | Status::NotRun(m) | Status::Measured(m) => m.clone(),
        Status::Pass => String::new(),
    };
    let Some(r) = result else {
        return why("the case reported no result", &detail);
    };
    if !vm_ok {
        return why("the VM did not complete", &detail);
    }
    match r.outcome {
        ktap::Outcome::Pass => {
            return Status::Fail(
                "passed on the baseline (unpatched) kernel, where it must fail: the probe no longer detects size-blind lookups".into(),
            )
        }
        ktap::Outcome::Xfail => return why("it is marked XFAIL", &detail),
        ktap::Outcome::Skip => return why("it was skipped", &detail),
        ktap::Outcome::Timeout => return why("it timed out", &detail),
        ktap::Outcome::Todo => return why("it is marked TODO", &detail),
        ktap::Outcome::Fail => {}
    }
    let Some(c) = count else {
        return why(
            "it failed without a count line (the probe crashed, could not set up, or lost its expectations)",
            &detail,
        );
    };
    if c.checked == 0 {
        return why("it checked 0 items", &detail);
    }
    if c.mismatched == 0 {
        return why(
            &format!(
                "it failed, but its count says 0 of {} mismatched",
                c.checked
            ),
            &detail,
        );
    }
    // `CaseWriter::counted` writes `# N of M mismatched`, then what
    // mismatched (expected vs actual), then the count line.
    let summary = format!("# {} of {} mismatched", c.mismatched, c.checked);
    let has_diagnostics = r
        .diagnostics
        .iter()
        .skip_while(|l| l.trim() != summary)
        .skip(1)
        // The guest's timing line follows every case: it is no diagnostic.
        .any(|l| ksh_proto::parse_checked_line(l).is_none() && !l.starts_with("# case-time:"));
    if !has_diagnostics {
        return why("it printed no expected-vs-actual diagnostics", &detail);
    }
    Status::Pass
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::arch::X86_64;

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
            whole_series: true,
            objects_in_tree: false,
        }
    }

    /// A console log with no warning in it (a file of the repository: the
    /// judge only reads it, and nothing is left in /tmp).
    fn quiet_console() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/ktap-data/quiet-console.log"
        ))
    }

    fn outcome(exit: Exit, results: &str) -> VmOutcome {
        VmOutcome {
            exit,
            accel: Accel::Tcg,
            results: results.into(),
            run_dir: PathBuf::from("/runs/x"),
            console_log: quiet_console(),
            cmdline: "qemu".into(),
            console_spoke: true,
            boot_to_results: None,
            elapsed: Duration::from_secs(1),
        }
    }

    const INFO: &str = "kprobes=1\nfunction_tracer=1\ndynamic_ftrace=1\nkallsyms_selftest=0\n";

    fn info(text: &str) -> BuildInfo {
        BuildInfo::decode(text).unwrap()
    }

    fn judge(src: &KernelSource, results: &str, exit: Exit, baseline: bool) -> Vec<CaseResult> {
        case_results(
            &cell(src),
            &outcome(exit, results),
            &Judgement {
                expect_baseline_failures: baseline,
                build_info: &info(INFO),
            },
        )
        .cases
    }

    /// A complete stream in which every case passes after checking 10
    /// items, except `failing` (3 of 10 mismatched, with diagnostics), and
    /// those `kallsyms-selftest` skips as not applicable.
    fn stream(failing: &[(&str, &str)]) -> String {
        stream_with(failing, |_, _| None)
    }

    /// [`stream`] with `custom(probe, case)` replacing a case's lines.
    fn stream_with(
        failing: &[(&str, &str)],
        custom: impl Fn(&str, &str) -> Option<String>,
    ) -> String {
        let mut s = format!("KTAP version 1\n1..{}\n", ksh_proto::PROBES.len());
        for (i, p) in ksh_proto::PROBES.iter().enumerate() {
            s.push_str(&format!(
                "    KTAP version 1\n    # Subtest: {}\n    1..{}\n",
                p.name,
                p.cases.len()
            ));
            let mut all_ok = true;
            for (j, c) in p.cases.iter().enumerate() {
                let n = j + 1;
                if let Some(lines) = custom(p.name, c) {
                    all_ok &= !lines.contains("not ok");
                    s.push_str(&lines.replace("{n}", &n.to_string()));
                } else if p.name == "kallsyms-selftest" {
                    s.push_str(&format!("    ok {n} {c} # SKIP no selftest\n"));
                } else if failing.contains(&(p.name, c)) {
                    all_ok = false;
                    s.push_str(&format!(
                        "    # 3 of 10 mismatched\n    # expected 0x10, got 0x20\n    {}\n    not ok {n} {c}\n",
                        ksh_proto::checked_line(p.name, c, 3, 10)
                    ));
                } else if ksh_proto::is_counted(p.name, c) {
                    s.push_str(&format!(
                        "    {}\n    ok {n} {c}\n",
                        ksh_proto::checked_line(p.name, c, 0, 10)
                    ));
                } else {
                    s.push_str(&format!(
                        "    # lookup_ns=120 format_ns=340 n=100 rounds=1\n    ok {n} {c}\n"
                    ));
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
    fn build_cases_are_the_registry_s() {
        let names: Vec<&str> = BUILD_CASES.iter().map(|c| c.1).collect();
        assert!(BUILD_CASES.iter().all(|c| c.0 == "build"));
        assert_eq!(names, ksh_proto::BUILD_STEP_CASES);
    }

    #[test]
    fn clean_run_passes_every_case() {
        let src = source();
        let cases = judge(&src, &stream(&[]), Exit::PoweredOff, false);
        assert_eq!(
            cases.len(),
            test_names(&X86_64, "minimal").len() - BUILD_CASES.len(),
            "all but the build cases (judged by the build, not the stream)"
        );
        assert!(
            cases.iter().all(|c| c.status == Status::Pass
                || c.name.contains("/kallsyms-selftest/")
                || c.name.contains("/lookup-bench/")),
            "{cases:#?}"
        );
        assert!(matches!(
            status_of(&cases, "/kallsyms-selftest/verdict"),
            Status::Skip(_)
        ));
        assert_eq!(
            status_of(&cases, "/lookup-bench/measured"),
            &Status::Measured("lookup_ns=120 format_ns=340 n=100 rounds=1".into())
        );
    }

    #[test]
    fn a_measurement_passes_only_with_its_figure() {
        let src = source();
        let s = stream_with(&[], |p, c| {
            ((p, c) == ("lookup-bench", "measured")).then(|| "    ok {n} measured\n".to_string())
        });
        let cases = judge(&src, &s, Exit::PoweredOff, false);
        let Status::Fail(msg) = status_of(&cases, "/lookup-bench/measured") else {
            panic!("{cases:#?}")
        };
        assert!(msg.contains("nothing was measured"), "{msg}");
    }

    #[test]
    fn declared_skips_name_real_config_variants() {
        // A variant named in `declared_in` that does not exist would
        // excuse nothing; one whose fragments ask for what `requires`
        // checks would excuse a lost feature.
        let variants = crate::kernel::kconfig::variant_names().unwrap();
        for a in ksh_proto::APPLICABILITY {
            for s in a.declared_in {
                if let ksh_proto::Scope::Config(v) = s {
                    assert!(
                        variants.iter().any(|n| n == v),
                        "{}: no variant {v}",
                        a.probe
                    );
                    let text = std::fs::read_to_string(
                        layout::kernel_configs_dir().join(format!("variants/{v}.config")),
                    )
                    .unwrap();
                    assert!(
                        !text.contains("CONFIG_KALLSYMS_SELFTEST=y")
                            || a.probe != "kallsyms-selftest",
                        "{v} has the selftest but declares it may skip"
                    );
                }
            }
        }
    }

    #[test]
    fn xfail_is_a_failure() {
        let src = source();
        let s = stream_with(&[], |p, c| {
            ((p, c) == ("sizes", "start-size")).then(|| {
                format!(
                    "    {}\n    not ok {{n}} start-size # XFAIL known\n",
                    ksh_proto::checked_line("sizes", "start-size", 0, 10)
                )
            })
        });
        let cases = judge(&src, &s, Exit::PoweredOff, false);
        let Status::Fail(msg) = status_of(&cases, "/sizes/start-size") else {
            panic!("{cases:#?}")
        };
        assert!(msg.contains("XFAIL"), "{msg}");
    }

    #[test]
    fn a_skip_is_accepted_only_in_the_cells_the_registry_names() {
        let src = source();
        // The selftest skips in every variant but `kprobes`, whose config
        // has it: there a skip is a lost feature.
        let judge_in = |config: &str, src: &KernelSource| {
            case_results(
                &Cell {
                    arch: &X86_64,
                    config: config.into(),
                    source: src,
                },
                &outcome(Exit::PoweredOff, &stream(&[])),
                &Judgement {
                    expect_baseline_failures: false,
                    build_info: &info(INFO),
                },
            )
            .cases
        };
        for ok in ["minimal", "minimal-llvm", "kaslr"] {
            let cases = judge_in(ok, &src);
            assert!(
                cases
                    .iter()
                    .any(|c| c.name.ends_with("/kallsyms-selftest/verdict")
                        && matches!(c.status, Status::Skip(_))),
                "{ok}: {cases:#?}"
            );
        }
        for lost in ["kprobes", "kprobes-llvm"] {
            let cases = judge_in(lost, &src);
            let c = cases
                .iter()
                .find(|c| c.name.ends_with("/kallsyms-selftest/verdict"))
                .unwrap();
            let Status::Fail(msg) = &c.status else {
                panic!("{lost}: {c:#?}")
            };
            assert!(
                msg.contains("does not declare") && msg.contains("config variant kprobes"),
                "{msg}"
            );
        }
        // A case no cell may skip (ftrace: common.config has the tracer).
        let s = stream_with(&[], |p, c| {
            (p == "ftrace")
                .then(|| format!("    ok {{n}} {c} # SKIP needs CONFIG_DYNAMIC_FTRACE\n"))
        });
        let info = INFO.replace("dynamic_ftrace=1", "dynamic_ftrace=0");
        let cases = case_results(
            &cell(&src),
            &outcome(Exit::PoweredOff, &s),
            &Judgement {
                expect_baseline_failures: false,
                build_info: &self::info(&info),
            },
        )
        .cases;
        let Status::Fail(msg) = status_of(&cases, "/ftrace/filter-all") else {
            panic!("{cases:#?}")
        };
        assert!(msg.contains("lost a feature"), "{msg}");
        // The host's own case: generators-agree may skip on the baseline
        // only.
        let skip = Status::Skip("no check".into());
        assert!(matches!(
            declared_skip_only(&cell(&src), GENERATORS_CASE, skip.clone()),
            Status::Fail(_)
        ));
        let baseline = KernelSource {
            patched: false,
            whole_series: false,
            ..source()
        };
        assert_eq!(
            declared_skip_only(&cell(&baseline), GENERATORS_CASE, skip.clone()),
            skip
        );
    }

    #[test]
    fn failing_case_carries_diagnostics_and_log_paths() {
        let src = source();
        let cases = judge(
            &src,
            &stream(&[("proc-kallsyms", "addresses")]),
            Exit::PoweredOff,
            false,
        );
        let Status::Fail(msg) = status_of(&cases, "/proc-kallsyms/addresses") else {
            panic!()
        };
        assert!(
            msg.contains("expected 0x10, got 0x20") && msg.contains("console.log"),
            "{msg}"
        );
        assert_eq!(status_of(&cases, "/boot/vm-completed"), &Status::Pass);
    }

    #[test]
    fn panic_fails_the_vm_case_and_marks_the_rest_not_run() {
        let src = source();
        let partial = "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: boot\n    1..2\n    # ksh-checked: boot/init-ran 0 of 1 mismatched\n    ok 1 init-ran\n";
        let exit = Exit::Panic {
            excerpt: "Kernel panic - not syncing: Attempted to kill init!".into(),
        };
        let cases = judge(&src, partial, exit, false);
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
        let Status::NotRun(why) = status_of(&cases, "/proc-kallsyms/format") else {
            panic!()
        };
        assert!(why.contains("the VM did not complete"), "{why}");
    }

    #[test]
    fn hang_is_a_failure_never_a_pass() {
        let src = source();
        let cases = judge(
            &src,
            "",
            Exit::Timeout {
                what: "no output for 45 s".into(),
            },
            false,
        );
        assert!(
            cases
                .iter()
                .filter(|c| !c.name.ends_with(WARNINGS_CASE.1))
                .all(|c| c.status.is_failure()),
            "{cases:#?}"
        );
    }

    #[test]
    fn malformed_stream_fails_the_vm_case() {
        let src = source();
        let mut s = stream(&[]);
        s = s.replacen("    ok 1 init-ran", "    ok one init-ran", 1);
        let cases = judge(&src, &s, Exit::PoweredOff, false);
        let Status::Fail(msg) = status_of(&cases, "/boot/vm-completed") else {
            panic!("{cases:#?}")
        };
        assert!(msg.contains("malformed result stream"), "{msg}");
    }

    /// Every case the registry lists as a baseline failure.
    fn listed() -> Vec<(&'static str, &'static str)> {
        ksh_proto::PROBES
            .iter()
            .flat_map(|p| p.baseline_failures.iter().map(move |c| (p.name, *c)))
            .collect()
    }

    #[test]
    fn strict_baseline_proof_accepts_counted_mismatches_only() {
        let src = source();
        let cases = judge(&src, &stream(&listed()), Exit::PoweredOff, true);
        assert!(
            cases.iter().all(|c| c.status == Status::Pass
                || c.name.contains("/kallsyms-selftest/")
                || c.name.contains("/lookup-bench/")),
            "{cases:#?}"
        );
        // A listed case that passes fails the proof.
        let mut some = listed();
        some.retain(|c| *c != ("sizes", "start-size"));
        let cases = judge(&src, &stream(&some), Exit::PoweredOff, true);
        let Status::Fail(msg) = status_of(&cases, "/sizes/start-size") else {
            panic!()
        };
        assert!(msg.contains("must fail"), "{msg}");
    }

    #[test]
    fn strict_baseline_proof_rejects_crash_timeout_setup_error_and_skip() {
        let src = source();
        let target = ("weak-orphans", "fixture");
        for (lines, reason) in [
            // The probe died before reporting: the parent's synthesised line.
            (
                "    # probe process ended (signal: 11) before reporting this case\n    not ok {n} fixture\n",
                "without a count line",
            ),
            ("    not ok {n} fixture # TIMEOUT probe exceeded 30 s\n", "timed out"),
            (
                "    # /ksh/expect/orphans.txt: No such file or directory\n    not ok {n} fixture\n",
                "without a count line",
            ),
            ("    ok {n} fixture # SKIP nothing to do\n", "skipped"),
            (
                "    # 0 checked: no orphan\n    # ksh-checked: weak-orphans/fixture 0 of 0 mismatched\n    not ok {n} fixture\n",
                "checked 0 items",
            ),
            (
                "    # 2 of 5 mismatched\n    # ksh-checked: weak-orphans/fixture 2 of 5 mismatched\n    not ok {n} fixture\n",
                "no expected-vs-actual",
            ),
            // The guest's timing line is no diagnostic.
            (
                "    # 2 of 5 mismatched\n    # case-time: fixture 3 ms\n    # ksh-checked: weak-orphans/fixture 2 of 5 mismatched\n    not ok {n} fixture\n",
                "no expected-vs-actual",
            ),
        ] {
            let s = stream_with(&listed(), |p, c| {
                ((p, c) == target).then(|| lines.to_string())
            });
            let cases = judge(&src, &s, Exit::PoweredOff, true);
            let Status::Fail(msg) = status_of(&cases, "/weak-orphans/fixture") else {
                panic!("{lines}: {cases:#?}")
            };
            assert!(
                msg.contains("baseline proof") && msg.contains(reason),
                "{lines}: {msg}"
            );
        }
        // A listed case of a VM that did not complete is never a pass.
        let cases = judge(
            &src,
            &stream(&listed()),
            Exit::Panic {
                excerpt: "Kernel panic".into(),
            },
            true,
        );
        assert!(matches!(
            status_of(&cases, "/sizes/start-size"),
            Status::Fail(_)
        ));
    }

    #[test]
    fn unlisted_witness_must_pass_with_a_count_on_the_baseline() {
        let src = source();
        let s = stream_with(&listed(), |p, c| {
            ((p, c) == ("weak-orphans", "preceding-start")).then(|| {
                "    # ksh-checked: weak-orphans/preceding-start 0 of 0 mismatched\n    ok {n} preceding-start\n".to_string()
            })
        });
        let cases = judge(&src, &s, Exit::PoweredOff, true);
        let Status::Fail(msg) = status_of(&cases, "/weak-orphans/preceding-start") else {
            panic!()
        };
        assert!(msg.contains("0 items"), "{msg}");
    }

    #[test]
    fn pass_without_a_count_and_undeclared_skip_fail() {
        let src = source();
        let s = stream_with(&[], |p, c| match (p, c) {
            ("sizes", "start-size") => Some("    ok {n} start-size\n".into()),
            ("weak-kept", "size") => Some("    ok {n} size # SKIP empty list\n".into()),
            ("ftrace", "filter-all") => Some(
                "    # ksh-checked: ftrace/filter-all 0 of 0 mismatched\n    ok {n} filter-all\n"
                    .into(),
            ),
            _ => None,
        });
        let cases = judge(&src, &s, Exit::PoweredOff, false);
        let fail = |suffix: &str, want: &str| {
            let Status::Fail(msg) = status_of(&cases, suffix) else {
                panic!("{suffix}: {cases:#?}")
            };
            assert!(msg.contains(want), "{suffix}: {msg}");
        };
        fail("/sizes/start-size", "without a count line");
        fail("/weak-kept/size", "APPLICABILITY");
        fail("/ftrace/filter-all", "0 items");
        // Declared not applicable (no CONFIG_KALLSYMS_SELFTEST): a skip.
        assert!(matches!(
            status_of(&cases, "/kallsyms-selftest/verdict"),
            Status::Skip(_)
        ));
    }

    #[test]
    fn summary_counts_per_probe() {
        let counts = vec![
            CaseCount {
                probe: "sizes",
                case: "start-name-offset",
                mismatched: 0,
                checked: 900,
            },
            CaseCount {
                probe: "sizes",
                case: "start-size",
                mismatched: 12,
                checked: 900,
            },
            CaseCount {
                probe: "boot",
                case: "init-ran",
                mismatched: 0,
                checked: 1,
            },
        ];
        assert_eq!(
            counts_summary(&counts, true),
            "boot 1, sizes 900 (start-size 12 of 900 size-blind)"
        );
    }
}
