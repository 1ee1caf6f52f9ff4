//! One test run of one cell (arch × config × source): build the kernel
//! (and run the build's checks), compute expectations, pack the
//! initramfs, boot, and hand what the run left to the judge
//! (`results::judge`), saving it in the run dir. The order of stages is
//! the data flow of the harness; each stage lives in its own module.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ksh_proto::files::BuildInfo;

use crate::cell::arch::ArchProfile;
use crate::cell::{CellId, SourceKind, TestName};
use crate::kernel::kbuild::{self, BuildRequest, Built};
use crate::kernel::source::KernelSource;
use crate::kernel::{generator_check, linkstable};
use crate::layout;
use crate::results::bootlog;
use crate::results::judge::{
    self, AllowList, BootRecord, BuildRecord, CellFacts, JudgeInput, Judged, Mode, RunTexts,
    VmRecord,
};
use crate::results::report::CellReport;
use crate::results::run_record;
use crate::vm::accel::{self, AccelChoice};
use crate::vm::qemu::{self, Accel, Exit, Timeouts, VmOutcome, VmSpec};

pub use crate::cell::{
    BUILD_CASE, BUILD_CASES, GENERATORS_CASE, LINK_STABLE_CASE, VM_CASE, WARNINGS_CASE,
};
pub use crate::results::judge::CaseCount;

/// Every test name of a cell, in report order. Known without building
/// anything, so `--list` and filters need no kernel.
pub fn test_names(cell: &CellId) -> Vec<String> {
    crate::results::judge::case_names(cell)
}

/// One cell and the source tree its kernel is built from.
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    pub id: CellId,
    pub source: &'a KernelSource,
}

impl<'a> Cell<'a> {
    /// The cell `id` of `source`: its source kind and kernel line are the
    /// tree's.
    pub fn new(id: &CellId, source: &'a KernelSource) -> Cell<'a> {
        let id = CellId {
            source: source.key.kind,
            kernel: source.kernel,
            ..id.clone()
        };
        Cell { id, source }
    }

    /// `KERNEL/ARCH/CONFIG`, the prefix of every test name of this cell.
    pub fn name(&self) -> String {
        self.id.name()
    }

    /// Every test name of the cell, in report order.
    pub fn test_names(&self) -> Vec<String> {
        test_names(&self.id)
    }

    /// The name of the cell's case `probe/case`.
    pub fn case_name(&self, (probe, case): (&str, &str)) -> String {
        TestName::new(&self.id, probe, case).to_string()
    }

    fn build_request(&self, jobs: usize) -> BuildRequest<'_> {
        BuildRequest {
            cell: &self.id,
            source: self.source,
            jobs,
        }
    }

    /// The run dirs of this cell: one per invocation (see [`layout::new_run_dir`]).
    pub fn runs_dir(&self) -> PathBuf {
        self.id.runs_dir(&self.source.key)
    }

    /// The command that boots this cell's kernel with a shell (`cargo
    /// xtask run`), for failure messages.
    pub fn explore_command(&self) -> String {
        let mut s = format!(
            "cargo xtask run --arch {} --config {}",
            self.id.arch.name,
            self.id.label()
        );
        // A user tree's Makefile names its line; Debian's source is the
        // line's own.
        if self.id.source != SourceKind::UserTree {
            s.push_str(&format!(" --kernel {}", self.id.kernel));
        }
        if self.id.source == SourceKind::UserTree {
            s.push_str(&format!(
                " --kernel-tree {}",
                crate::process::shell_word(&self.source.tree.to_string_lossy())
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

    /// The cell's identity as the judge needs it.
    pub fn facts(&self) -> CellFacts {
        CellFacts {
            id: self.id.clone(),
            explore_command: self.explore_command(),
        }
    }
}

/// Knobs of a run that do not change what is built. `Default` is a plain
/// test run (`--accel auto`, `make -j` CPUs + 1, nothing extra); callers
/// set only what differs: `RunOptions { accel, ..Default::default() }`.
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

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            accel: AccelChoice::default(),
            jobs: crate::process::default_jobs(),
            expect_baseline_failures: false,
            guest_params: Vec::new(),
            silence_limit: None,
            stream_console: false,
            gdb_port: None,
            instruction_clock: false,
        }
    }
}

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
    /// In mutant mode, the mutant's verdict (`results::judge::mutant`).
    pub mutant: Option<judge::Verdict>,
}

/// The guest's own figure for its probes, from the result stream.
pub fn guest_probes_time(results: &str) -> Option<Duration> {
    results.lines().find_map(|l| {
        let ms = l.strip_prefix("# ksh: probes took ")?.split(' ').next()?;
        ms.parse().ok().map(Duration::from_millis)
    })
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
    let candidates = accel::candidates(opts.accel, cell.id.arch)?;
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
            arch: cell.id.arch,
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
            memory_mib: qemu::memory_mib(cell.id.arch, symbols, &initrd),
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
            accel::remember(cell.id.arch, outcome.console_spoke);
            if !outcome.console_spoke && fallback_possible {
                // Say what QEMU actually did: an abort in 0.1 s is not a
                // silent guest.
                let what = match &outcome.exit {
                    Exit::QemuFailed { status, stderr } => format!(
                        "QEMU with KVM exited ({status}) after {}: {}",
                        crate::process::fmt_duration(outcome.elapsed),
                        stderr.lines().next().unwrap_or("").trim()
                    ),
                    _ => format!(
                        "KVM printed nothing in {}",
                        crate::process::fmt_duration(outcome.elapsed)
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
        crate::process::shell_word(&built.vmlinux.to_string_lossy())
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
    let ko = crate::payload::probemod::ko_path(built);
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

/// Runs one cell end to end and judges it (`results::judge`): faults of
/// the system under test (build failure, panic, hang) become failed cases;
/// faults of the harness itself are errors. The judge's input and its
/// verdicts are saved in the run dir (`results::run_record`).
pub fn run_cell(cell: &Cell, opts: &RunOptions) -> Result<(CellReport, CellTimes)> {
    let mode = if opts.expect_baseline_failures {
        Mode::BaselineProof
    } else {
        Mode::Normal
    };
    run_cell_as(cell, opts, mode)
}

/// [`run_cell`], judged in `mode` (a mutant's verdict is in
/// [`CellTimes::mutant`]).
pub fn run_cell_as(cell: &Cell, opts: &RunOptions, mode: Mode) -> Result<(CellReport, CellTimes)> {
    let started = Instant::now();
    let (built, build) = build_step(cell, opts.jobs);
    let mut input = JudgeInput {
        format: judge::RECORD_FORMAT,
        cell: cell.facts(),
        mode,
        build,
        boot: None,
        build_info: BuildInfo::default(),
        allow_list: allow_list(),
    };
    let mut texts = RunTexts {
        results: String::new(),
        console: Ok(String::new()),
    };
    let mut run_dir = None;
    if let Some(built) = &built {
        // A fault of the harness from here on (an unreadable vmlinux, a
        // full disk, QEMU that cannot start) fails this cell's cases; the
        // other cells still run.
        input.boot = Some(match boot_built(cell, built, opts) {
            Ok((outcome, build_info)) => {
                input.build_info = build_info;
                texts = RunTexts {
                    console: fs::read(&outcome.console_log)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .map_err(|e| {
                            format!(
                                "cannot read the console log {}: {e}",
                                outcome.console_log.display()
                            )
                        }),
                    results: outcome.results,
                };
                run_dir = Some(outcome.run_dir.clone());
                BootRecord::Ran(VmRecord {
                    exit: outcome.exit,
                    accel: outcome.accel,
                    run_dir_free: layout::free_bytes(&outcome.run_dir),
                    run_dir: outcome.run_dir,
                    elapsed: outcome.elapsed,
                    boot_to_results: outcome.boot_to_results,
                })
            }
            Err(e) => BootRecord::HarnessError(layout::describe_error(&e)),
        });
    }
    let judged = judge::judge(&input, &texts);
    if let Some(dir) = run_dir {
        if let Err(e) = run_record::save(&dir, &input, &judged) {
            eprintln!(
                "ksh: {}: the judge's record is not saved (`cargo xtask judge` cannot judge this run again): {}",
                cell.name(),
                layout::describe_error(&e)
            );
        }
    }
    let times = cell_times(&input, &texts, &judged);
    Ok((
        CellReport {
            cell: cell.id.clone(),
            cases: judged.cases,
            elapsed: started.elapsed(),
        },
        times,
    ))
}

/// Builds the kernel and runs the build's own checks (the generators'
/// comparison, the link's stability): the kernel, if built, and the
/// record the judge gets.
fn build_step(cell: &Cell, jobs: usize) -> (Option<Built>, BuildRecord) {
    match build_kernel(cell, jobs) {
        Ok(built) => {
            let record = BuildRecord::Built {
                elapsed: built.elapsed,
                ran_make: built.ran_make,
                generators: generator_check::check_built(&built.dir, cell.id.kernel),
                link_stable: linkstable::check_built(
                    &built.dir,
                    cell.id.arch,
                    built.toolchain,
                    cell.id.kernel,
                ),
            };
            (Some(built), record)
        }
        Err(e) => {
            let log = layout::build_log(&cell.build_request(jobs).build_dir());
            let record = BuildRecord::Failed {
                error: layout::describe_error(&e),
                generators: generator_check::check_failed_build(&log),
            };
            (None, record)
        }
    }
}

/// The boot log's allow-list, as the judge gets it.
fn allow_list() -> AllowList {
    let path = layout::project_root().join(bootlog::ALLOW_FILE);
    AllowList {
        text: fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display())),
        path,
    }
}

/// The figures of a judged cell (for the summary lines, `bench`, and
/// `cargo xtask judge`, which prints them from a saved record).
pub fn cell_times(input: &JudgeInput, texts: &RunTexts, judged: &Judged) -> CellTimes {
    let mut times = CellTimes {
        counts: judged.counts.clone(),
        measured: judged.measured.clone(),
        mutant: judged.mutant.clone(),
        ..CellTimes::default()
    };
    if let BuildRecord::Built {
        elapsed, ran_make, ..
    } = &input.build
    {
        times.build = *elapsed;
        times.ran_make = *ran_make;
    }
    if let Some(BootRecord::Ran(vm)) = &input.boot {
        times.boot_to_results = vm.boot_to_results;
        times.vm_total = vm.elapsed;
        times.guest_probes = guest_probes_time(&texts.results);
        times.accel = Some(vm.accel.name());
        times.vm_exit = Some(vm.exit.clone());
        times.baseline_proof = input.mode == Mode::BaselineProof;
    }
    times
}

/// Expectations, initramfs and the VM run of a built cell; also the
/// build's `key=value` facts (for the registry's applicability rules).
fn boot_built(cell: &Cell, built: &Built, opts: &RunOptions) -> Result<(VmOutcome, BuildInfo)> {
    let (initrd, build_info) = prepare_guest(cell, built, &[], INITRAMFS)?;
    // Each invocation has its own run dir; same-cell runs from two
    // processes still take turns on the VM (two TCG guests on a small host
    // would push each other past the probes' timeouts).
    let _run_lock = layout::lock(&layout::runs_lock(&cell.runs_dir()))?;
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
    let init = crate::payload::guestbin::build_init(cell.id.arch)?;
    let init_bytes = fs::read(&init).with_context(|| format!("reading {}", init.display()))?;
    let mut payload = crate::payload::expect::guest_files(cell.id.arch, built)?;
    payload.files.extend(extra.iter().cloned());
    let initrd = built.dir.join(name);
    crate::payload::initramfs::write(&initrd, &init_bytes, &payload.files)?;
    Ok((initrd, payload.build_info))
}

#[cfg(test)]
mod tests {
    use super::*;

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
