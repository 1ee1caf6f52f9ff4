//! Booting a kernel in QEMU and watching it until the guest is done.
//!
//! The command line is built from the arch profile ([`crate::cell::arch`]) by a pure
//! function ([`command`]) so it can be unit-tested. The runner starts QEMU
//! with the console and the results port written to files, talks QMP
//! ([`crate::vm::qmp`]: non-blocking, every step with its own limit) to
//! learn why the VM stopped, to see that QEMU still answers, and to stop it,
//! and never waits forever: a QMP step past its limit kills QEMU at once,
//! and the first-output, silence and overall limits are checked on the
//! clock and end in `quit` and, failing that, SIGKILL after a short grace.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cell::arch::ArchProfile;
use crate::vm::qmp::{QmpLimits, QmpWatch};

/// The accelerator QEMU runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How long the runner waits, per phase.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From start until the console prints anything.
    pub first_output: Duration,
    /// Longest stretch with neither console nor results output.
    pub silence: Duration,
    /// Whole run.
    pub overall: Duration,
}

/// One VM to run.
#[derive(Debug, Clone)]
pub struct VmSpec<'a> {
    pub arch: &'a ArchProfile,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cpus: u32,
    /// Guest memory (see [`memory_mib`]).
    pub memory_mib: u32,
    /// Directory for this run's files (console, results, command line).
    pub run_dir: PathBuf,
    /// The QMP socket. Kept out of the run dir: a Unix socket path must be
    /// shorter than 108 bytes, which a deep checkout would exceed.
    pub qmp_socket: PathBuf,
    pub timeouts: Timeouts,
    /// The limits of each QMP step (a QEMU that stops answering is
    /// killed at once).
    pub qmp: QmpLimits,
    /// Extra kernel command-line words for the guest's own use
    /// (`ksh.*` parameters that `/init` reads from /proc/cmdline).
    pub guest_params: Vec<String>,
    /// Where the serial console goes.
    pub console: Console,
    /// QEMU's gdbstub on this TCP port of 127.0.0.1, the guest halted at
    /// the first instruction until gdb continues it (`--gdb`).
    pub gdb_port: Option<u16>,
    /// The guest's clocks count instructions ([`INSTRUCTION_CLOCK`]), for
    /// the bench's lookup cost: TCG only.
    pub instruction_clock: bool,
}

/// QEMU's `-icount` setting for an instruction clock: every guest
/// instruction advances the virtual clock by 2^4 ns
/// ([`INSTRUCTION_CLOCK_NS`]), so a time the guest measures is its
/// instruction count times 16, the same on every host and under any load
/// (`sleep=off`: an idle guest's clock jumps to its next timer instead of
/// following the host's). With 1 ns per instruction (`shift=0`) the
/// x86_64 null boot took 19 s instead of 2.5 s: the kernel's delays are
/// in time, and cost 16 times the instructions. icount runs one vCPU at a
/// time (`thread=single`), so it is for the bench, not for test runs.
pub const INSTRUCTION_CLOCK: &str = "shift=4,sleep=off";
/// Guest nanoseconds per instruction under [`INSTRUCTION_CLOCK`].
pub const INSTRUCTION_CLOCK_NS: f64 = 16.0;

/// Guest memory for a kernel of `symbols` kallsyms symbols booted with
/// the initramfs `initrd`: the arch profile's (enough for the tiny
/// kernels), or more for a larger kernel. The initramfs (uncompressed) is
/// unpacked into RAM next to its image, and two probes at a time hold
/// `/proc/kallsyms`-sized texts and their expectations: at 177k symbols
/// (x86_64 defconfig) `kallsyms-sizes-file` alone reached 117 MB and the
/// guest ran out of 256 MB. So 4 KiB per symbol and twice the initramfs
/// on top of 128 MiB.
pub fn memory_mib(arch: &ArchProfile, symbols: u64, initrd: &std::path::Path) -> u32 {
    let initrd_mib = std::fs::metadata(initrd).map_or(0, |m| m.len() >> 20);
    let need = 128 + symbols * 4 / 1024 + 2 * initrd_mib;
    u32::try_from(need)
        .unwrap_or(u32::MAX)
        .max(arch.qemu.memory_mib)
}

/// Where the guest's serial console goes. It is always also saved in the
/// run dir's [`CONSOLE_LOG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// Only the log file (a test run).
    Log,
    /// The log file, and each new piece copied to stderr as it arrives
    /// (`cargo xtask test --console`).
    Stream,
    /// The user's terminal, both ways, multiplexed with QEMU's monitor
    /// (Ctrl-a c; Ctrl-a x quits); Ctrl-C goes to the guest
    /// (`cargo xtask run`).
    Interactive,
}

/// File names inside a run dir.
pub const CONSOLE_LOG: &str = "console.log";
pub const RESULTS_FILE: &str = "results.ktap";
pub const CMDLINE_FILE: &str = "qemu-cmdline.txt";
pub const QEMU_STDERR: &str = "qemu-stderr.log";

/// The whole `-append` value: the arch's command line plus the guest's
/// parameters.
fn append_line(spec: &VmSpec) -> String {
    let mut s = kernel_cmdline(spec.arch);
    if let (Some(param), Some(khz)) = (spec.arch.qemu.tsc_khz_param, guest_tsc_khz(spec)) {
        s.push_str(&format!(" {param}={khz}"));
    }
    for p in &spec.guest_params {
        s.push(' ');
        s.push_str(p);
    }
    s
}

/// The rate of the guest's TSC in kHz, where the harness knows it: under
/// an instruction clock the TSC counts virtual nanoseconds (1 GHz); under
/// plain TCG on an x86_64 host it is the host's TSC, measured once
/// ([`host_tsc_khz`]). KVM guests have kvmclock; elsewhere the kernel
/// calibrates as before.
fn guest_tsc_khz(spec: &VmSpec) -> Option<u64> {
    match spec.accel {
        Accel::Kvm => None,
        Accel::Tcg if spec.instruction_clock => Some(1_000_000),
        Accel::Tcg => host_tsc_khz(),
    }
}

/// The host's TSC rate in kHz (x86_64 hosts), from the TSC against the
/// monotonic clock over 50 ms, rounded to 100 kHz so that runs agree on
/// the command line. QEMU's TCG reads the host TSC for the guest's
/// `rdtsc`.
pub fn host_tsc_khz() -> Option<u64> {
    static KHZ: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *KHZ.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: rdtsc has no preconditions on x86_64.
            let tsc = || unsafe { core::arch::x86_64::_rdtsc() };
            let (t0, c0) = (std::time::Instant::now(), tsc());
            std::thread::sleep(Duration::from_millis(50));
            let (ns, cycles) = (t0.elapsed().as_nanos() as u64, tsc() - c0);
            let khz = u128::from(cycles) * 1_000_000 / u128::from(ns.max(1));
            let khz = (khz as u64 + 50) / 100 * 100;
            // A TSC that does not tick at a plausible rate is not one to
            // hand the guest.
            (100_000..10_000_000).contains(&khz).then_some(khz)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    })
}

/// The kernel command line for `arch`.
pub fn kernel_cmdline(arch: &ArchProfile) -> String {
    // panic=-1: reboot at once on panic; with -no-reboot QEMU then exits,
    // so a panicking kernel cannot keep the run waiting.
    // loglevel=7: KERN_INFO lines reach the console too (`segfault at`,
    // hung-task and lockup reports' details), for boot/no-kernel-warnings.
    // rcupdate.rcu_expedited=1: boot waits for RCU grace periods (before
    // mark_rodata_ro(), in module loading); expedited ones saved ~0.35 s
    // of the x86_64 boot under TCG. Lookups do not depend on it.
    let mut s = format!(
        "console={} panic=-1 oops=panic rdinit=/init loglevel=7 rcupdate.rcu_expedited=1",
        arch.qemu.console
    );
    if !arch.qemu.cmdline_extra.is_empty() {
        s.push(' ');
        s.push_str(arch.qemu.cmdline_extra);
    }
    if let Some(port) = arch.qemu.debug_exit_port {
        s.push_str(&format!(" {}={port:#x}", ksh_proto::EXIT_PORT_PARAM));
    }
    s
}

/// Builds the QEMU command for `spec` (does not start it).
pub fn command(spec: &VmSpec) -> Command {
    let q = &spec.arch.qemu;
    let rd = &spec.run_dir;
    let mut cmd = Command::new(q.binary);
    let (accel, cpu) = match spec.accel {
        Accel::Kvm => ("kvm".to_string(), q.cpu_kvm),
        // icount and multi-threaded TCG exclude each other.
        Accel::Tcg if spec.instruction_clock => ("tcg,thread=single".to_string(), q.cpu_tcg),
        Accel::Tcg => (format!("tcg{}", q.tcg_opts), q.cpu_tcg),
    };
    cmd.args([
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-no-user-config",
    ])
    .args(["-machine", q.machine])
    .args(["-accel", &accel])
    .args(["-cpu", cpu])
    .args(["-smp", &spec.cpus.to_string()])
    .args(["-m", &spec.memory_mib.to_string()])
    .arg("-kernel")
    .arg(&spec.kernel)
    .arg("-initrd")
    .arg(&spec.initrd)
    .args(["-append", &append_line(spec)]);
    match spec.console {
        Console::Log | Console::Stream => cmd.args([
            "-chardev",
            &format!("file,id=console,path={}", rd.join(CONSOLE_LOG).display()),
        ]),
        // mux: the monitor shares the terminal (Ctrl-a c); signal=off: a
        // Ctrl-C is the guest's, not a signal that kills QEMU.
        Console::Interactive => cmd
            .args([
                "-chardev",
                &format!(
                    "stdio,id=console,mux=on,signal=off,logfile={}",
                    rd.join(CONSOLE_LOG).display()
                ),
            ])
            .args(["-mon", "chardev=console,mode=readline"]),
    };
    if let Some(port) = spec.gdb_port {
        cmd.args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"]);
    }
    if spec.instruction_clock {
        cmd.args(["-icount", INSTRUCTION_CLOCK]);
    }
    cmd.args(["-serial", "chardev:console"])
        .args(["-device", &format!("{},id=vser0", q.virtio_serial_device)])
        .args([
            "-chardev",
            &format!("file,id=results,path={}", rd.join(RESULTS_FILE).display()),
        ])
        .args([
            "-device",
            &format!(
                "virtserialport,bus=vser0.0,chardev=results,name={}",
                ksh_proto::RESULTS_PORT_NAME
            ),
        ])
        .args([
            "-qmp",
            &format!("unix:{},server=on,wait=off", spec.qmp_socket.display()),
        ]);
    if let Some(port) = q.debug_exit_port {
        cmd.args([
            "-device",
            &format!("isa-debug-exit,iobase={port:#x},iosize=0x1"),
        ]);
    }
    cmd
}

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// The guest powered the machine off.
    PoweredOff,
    /// The guest reset the machine (with `-no-reboot` QEMU then exits);
    /// after a completed run this is how a guest without power-off ends.
    Reset,
    /// The kernel panicked; the excerpt is from the console log.
    Panic { excerpt: String },
    /// A timeout stopped the VM.
    Timeout { what: String },
    /// QEMU exited on its own with an error.
    QemuFailed { status: String, stderr: String },
    /// Stopped by Ctrl-C.
    Interrupted,
}

/// What a VM run produced.
#[derive(Debug, Clone)]
pub struct VmOutcome {
    pub exit: Exit,
    pub accel: Accel,
    /// Raw bytes of the results port.
    pub results: String,
    pub run_dir: PathBuf,
    pub console_log: PathBuf,
    /// The exact command line, as a shell line, also in `qemu-cmdline.txt`.
    pub cmdline: String,
    /// Whether the console printed anything (for the KVM verdict).
    pub console_spoke: bool,
    /// From QEMU start until the completion record appeared.
    pub boot_to_results: Option<Duration>,
    pub elapsed: Duration,
}

/// Whether a result stream holds the completion record (the guest's
/// last line: every probe reported).
pub fn has_completion_record(results: &str) -> bool {
    results
        .lines()
        .any(|l| l.starts_with(ksh_proto::COMPLETION_RECORD))
}

/// One paragraph saying where to look in the run dir `run_dir`.
pub fn where_to_look(run_dir: &Path) -> String {
    format!(
        "console log: {}\nresults: {}\nqemu command: {}",
        run_dir.join(CONSOLE_LOG).display(),
        run_dir.join(RESULTS_FILE).display(),
        run_dir.join(CMDLINE_FILE).display()
    )
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// How long QEMU gets to exit after `quit` before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long a SIGKILLed QEMU may take to be reaped. The kernel ends a
/// killed process at once unless it sleeps uninterruptibly (a wedged
/// device or filesystem): then nothing the harness does helps, and it says
/// so instead of waiting.
const REAP_LIMIT: Duration = Duration::from_secs(5);

/// Waits for `child` to exit until `deadline`; whether it did.
fn exited_by(child: &mut Child, deadline: Instant) -> bool {
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops QEMU: `quit` over QMP when QMP answers, SIGKILL when QEMU is
/// still there after [`KILL_GRACE`] (at once when QMP does not answer: a
/// frozen QEMU handles no signal but SIGKILL). Never blocks longer than
/// the grace plus [`REAP_LIMIT`]. Returns how it ended, for the failure
/// message.
pub(crate) fn stop_vm(child: &mut Child, qmp: &mut QmpWatch) -> String {
    if qmp.answering() && qmp.quit() && exited_by(child, Instant::now() + KILL_GRACE) {
        return "stopped with QMP quit".into();
    }
    kill_vm(child)
}

/// SIGKILL, then reap within [`REAP_LIMIT`].
pub(crate) fn kill_vm(child: &mut Child) -> String {
    if let Ok(Some(_)) = child.try_wait() {
        return "QEMU exited".into();
    }
    let _ = child.kill();
    if exited_by(child, Instant::now() + REAP_LIMIT) {
        "killed with SIGKILL".into()
    } else {
        format!(
            "sent SIGKILL, but QEMU (pid {}) was still there {} s later (uninterruptible sleep in the host kernel?)",
            child.id(),
            REAP_LIMIT.as_secs()
        )
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The console lines around the first panic or oops message.
pub fn panic_excerpt(console: &str) -> Option<String> {
    let lines: Vec<&str> = console.lines().collect();
    let at = lines.iter().position(|l| {
        l.contains("Kernel panic - not syncing")
            || l.contains("Internal error: Oops")
            || l.contains("BUG: ")
    })?;
    let start = at.saturating_sub(12);
    let end = (at + 6).min(lines.len());
    Some(lines[start..end].join("\n"))
}

/// Boots `spec` and watches it until it stops. Never waits past
/// `spec.timeouts.overall` plus [`QMP_IO_TIMEOUT`] and [`KILL_GRACE`]: each
/// limit is checked on the clock, not on QMP, and ends in SIGKILL when QEMU
/// does not quit.
pub fn run(spec: &VmSpec) -> Result<VmOutcome> {
    let rd = &spec.run_dir;
    for f in [CONSOLE_LOG, RESULTS_FILE, QEMU_STDERR] {
        let _ = fs::remove_file(rd.join(f));
    }
    let (mut cmd, cmdline) = recorded_command(spec)?;
    let stderr_file = fs::File::create(rd.join(QEMU_STDERR))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file);
    let started = Instant::now();
    let (mut child, _live, mut qmp) = spawn(spec, &mut cmd)?;

    let mut watcher = Watcher::new(spec, started);
    let stop = watcher.watch(&mut child, &mut qmp)?;
    let watched = watcher.end(stop, &mut child, &mut qmp);
    // Collect a SHUTDOWN event that arrived just before QEMU exited.
    qmp.drain();
    let shutdown_reason = qmp.shutdown_reason().map(str::to_string);
    drop(qmp);
    let _ = fs::remove_file(&spec.qmp_socket);
    let elapsed = started.elapsed();
    let console =
        String::from_utf8_lossy(&fs::read(&watcher.console).unwrap_or_default()).into_owned();
    let mut results = String::new();
    if let Ok(mut f) = fs::File::open(&watcher.results) {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        results = String::from_utf8_lossy(&bytes).into_owned();
    }
    let exit = exit_of(
        spec,
        &watched,
        &console,
        &results,
        shutdown_reason.as_deref(),
    );
    Ok(VmOutcome {
        exit,
        accel: spec.accel,
        results,
        run_dir: rd.clone(),
        console_log: watcher.console,
        cmdline,
        console_spoke: !console.is_empty(),
        boot_to_results: watched.completed_at,
        elapsed,
    })
}

/// `spec`'s QEMU command and its shell line, written to the run dir's
/// [`CMDLINE_FILE`] (the run dir made; QMP sockets of dead harnesses and
/// this VM's old one removed). For the test runner and `cargo xtask run`.
pub(crate) fn recorded_command(spec: &VmSpec) -> Result<(Command, String)> {
    let rd = &spec.run_dir;
    fs::create_dir_all(rd).with_context(|| format!("creating {}", rd.display()))?;
    remove_stale_sockets();
    let _ = fs::remove_file(&spec.qmp_socket);
    let cmd = command(spec);
    let cmdline = crate::process::shell_line(&cmd);
    fs::write(rd.join(CMDLINE_FILE), format!("{cmdline}\n"))
        .with_context(|| format!("writing {}", rd.join(CMDLINE_FILE).display()))?;
    Ok((cmd, cmdline))
}

/// Starts QEMU: it dies with the harness however the harness dies, and is
/// in the Ctrl-C registry while the guard lives; its QMP is watched.
pub(crate) fn spawn(
    spec: &VmSpec,
    cmd: &mut Command,
) -> Result<(Child, crate::process::LiveGuard, QmpWatch)> {
    crate::process::die_with_parent(cmd, libc::SIGKILL);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", spec.arch.qemu.binary))?;
    let live = crate::process::register_live(child.id(), libc::SIGKILL);
    Ok((child, live, QmpWatch::new(&spec.qmp_socket, spec.qmp)))
}

/// The limits a test run's VM is watched against, each checked on the
/// clock (a frozen QEMU cannot hold them up).
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The caller's first-output, silence and overall limits.
    run: Timeouts,
    /// From the completion record to QEMU's exit ([`POWER_OFF_GRACE`]).
    power_off: Duration,
    /// From the kernel's power-down line (after the completion record) to
    /// QEMU's exit ([`POWER_DOWN_TO_EXIT`]).
    power_down_to_exit: Duration,
}

/// Why the watch of a running VM ended.
#[derive(Debug)]
enum Stop {
    /// QEMU exited by itself.
    Exited(ExitStatus),
    /// A QMP step past its limit: QEMU is frozen or wedged, and no later
    /// limit would be reached by waiting for it.
    QmpFault(String),
    /// The kernel printed its power-down line with every result written,
    /// but QEMU did not exit within [`Limits::power_down_to_exit`].
    PoweredDownNoExit,
    /// The guest wrote its completion record but did not power off within
    /// [`Limits::power_off`].
    NoPowerOff,
    /// A run limit passed (first output, silence, overall): which.
    Limit(String),
}

/// How a watched run ended, for [`exit_of`].
#[derive(Debug)]
struct Watched {
    /// QEMU's exit status when it exited by itself.
    status: Option<ExitStatus>,
    /// The limit that stopped it, with how QEMU was stopped.
    timeout: Option<String>,
    /// QEMU was stopped after the kernel's power-down line.
    stopped_after_power_down: bool,
    /// From QEMU's start until the completion record appeared.
    completed_at: Option<Duration>,
}

/// A running VM's outputs as the poll loop sees them, and its limits.
struct Watcher<'a> {
    spec: &'a VmSpec<'a>,
    limits: Limits,
    started: Instant,
    console: PathBuf,
    results: PathBuf,
    /// Sizes of the console log and the results file at the last look.
    sizes: (u64, u64),
    /// When either output last grew.
    last_activity: Instant,
    /// When the completion record appeared (since the start).
    completed_at: Option<Duration>,
    /// When the kernel printed its power-down line after the completion
    /// record (since the start).
    power_down_at: Option<Duration>,
    /// Bytes of the console log already copied to stderr (`Console::Stream`).
    streamed: u64,
}

/// How often the watcher looks at QEMU and its outputs.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

impl<'a> Watcher<'a> {
    fn new(spec: &'a VmSpec<'a>, started: Instant) -> Self {
        Watcher {
            spec,
            limits: Limits {
                run: spec.timeouts,
                power_off: POWER_OFF_GRACE,
                power_down_to_exit: POWER_DOWN_TO_EXIT,
            },
            started,
            console: spec.run_dir.join(CONSOLE_LOG),
            results: spec.run_dir.join(RESULTS_FILE),
            sizes: (0, 0),
            last_activity: Instant::now(),
            completed_at: None,
            power_down_at: None,
            streamed: 0,
        }
    }

    /// Polls until the run must end, and says why. The outputs are read
    /// before the process is looked at, so a guest that completes and
    /// powers off between two polls is seen completing.
    fn watch(&mut self, child: &mut Child, qmp: &mut QmpWatch) -> Result<Stop> {
        loop {
            let exited = child.try_wait()?;
            let qmp_fault = if exited.is_none() {
                qmp.poll().err()
            } else {
                None
            };
            self.look_at_outputs();
            if let Some(status) = exited {
                return Ok(Stop::Exited(status));
            }
            if let Some(fault) = qmp_fault {
                return Ok(Stop::QmpFault(fault.to_string()));
            }
            if let Some(stop) = self.limit_passed() {
                return Ok(stop);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Notes output growth (activity), the completion record and then the
    /// power-down line; copies new console output to stderr when asked.
    fn look_at_outputs(&mut self) {
        let sizes = (file_len(&self.console), file_len(&self.results));
        if self.spec.console == Console::Stream {
            self.streamed = stream_from(&self.console, self.streamed);
        }
        if sizes == self.sizes {
            return;
        }
        self.sizes = sizes;
        self.last_activity = Instant::now();
        if self.completed_at.is_none() && self.completion_written() {
            self.completed_at = Some(self.started.elapsed());
        }
        if self.completed_at.is_some() && self.power_down_at.is_none() && self.powered_down() {
            self.power_down_at = Some(self.started.elapsed());
        }
    }

    /// Whether the results hold the completion record.
    fn completion_written(&self) -> bool {
        self.sizes.1 > 0
            && has_completion_record(&fs::read_to_string(&self.results).unwrap_or_default())
    }

    /// Whether the console shows one of [`POWER_DOWN_LINES`].
    fn powered_down(&self) -> bool {
        let text = fs::read(&self.console).unwrap_or_default();
        POWER_DOWN_LINES
            .iter()
            .any(|line| text.windows(line.len()).any(|w| w == line.as_bytes()))
    }

    /// The first limit that has passed, if any.
    fn limit_passed(&self) -> Option<Stop> {
        let elapsed = self.started.elapsed();
        if self.power_down_overdue(elapsed) {
            return Some(Stop::PoweredDownNoExit);
        }
        let quiet = match self.completed_at {
            Some(done) if elapsed > done + self.limits.power_off => return Some(Stop::NoPowerOff),
            Some(_) => None,
            None => self.output_limit(elapsed),
        };
        quiet
            .or_else(|| self.overall_limit(elapsed))
            .map(Stop::Limit)
    }

    /// The kernel reached its power-down path with every result written,
    /// and QEMU has not exited since: the emulated power-off or reset has
    /// been seen not to come (q35's ACPI power-off before x86_64 moved to
    /// `microvm`; microvm's triple-fault reset under TCG, now and then).
    /// The run is complete, and waiting longer proves nothing about
    /// kallsyms.
    fn power_down_overdue(&self, elapsed: Duration) -> bool {
        self.power_down_at
            .is_some_and(|down| elapsed > down + self.limits.power_down_to_exit)
    }

    /// Before the completion record: no console output at all within the
    /// first-output limit, or no output for the silence limit.
    fn output_limit(&self, elapsed: Duration) -> Option<String> {
        let run = &self.limits.run;
        if self.sizes.0 == 0 && elapsed > run.first_output {
            Some(format!(
                "first-output limit: no console output in {} s",
                run.first_output.as_secs()
            ))
        } else if self.last_activity.elapsed() > run.silence {
            Some(format!(
                "silence limit: no console or results output for {} s",
                run.silence.as_secs()
            ))
        } else {
            None
        }
    }

    fn overall_limit(&self, elapsed: Duration) -> Option<String> {
        let overall = self.limits.run.overall;
        (elapsed > overall)
            .then(|| format!("overall limit: the run exceeded {} s", overall.as_secs()))
    }

    /// Stops QEMU as `stop` requires (nothing when it exited) and says
    /// how the run ended; copies the rest of the console when streaming.
    fn end(&mut self, stop: Stop, child: &mut Child, qmp: &mut QmpWatch) -> Watched {
        let mut watched = Watched {
            status: None,
            timeout: None,
            stopped_after_power_down: false,
            completed_at: self.completed_at,
        };
        match stop {
            Stop::Exited(status) => watched.status = Some(status),
            Stop::QmpFault(fault) => {
                let how = kill_vm(child);
                watched.timeout = Some(format!("{fault}; {how}"));
            }
            Stop::PoweredDownNoExit => {
                let how = stop_vm(child, qmp);
                eprintln!(
                    "ksh: {}: the guest powered down or reset (\"reboot: ...\" on its console) but QEMU did not exit within {} s; {how}",
                    self.spec.run_dir.display(),
                    self.limits.power_down_to_exit.as_secs()
                );
                watched.stopped_after_power_down = true;
            }
            Stop::NoPowerOff => {
                stop_vm(child, qmp);
            }
            Stop::Limit(what) => {
                let qmp_state = if qmp.answering() {
                    "QMP answering"
                } else {
                    "QMP not answering"
                };
                let how = stop_vm(child, qmp);
                watched.timeout = Some(format!("{what} ({qmp_state}; {how})"));
            }
        }
        if self.spec.console == Console::Stream {
            stream_from(&self.console, self.streamed);
        }
        watched
    }
}

/// How the guest ended, from how the watch ended, the console, the results
/// and QEMU's SHUTDOWN reason.
fn exit_of(
    spec: &VmSpec,
    watched: &Watched,
    console: &str,
    results: &str,
    shutdown_reason: Option<&str>,
) -> Exit {
    let completed = has_completion_record(results);
    let console_tail = || {
        if console.trim().is_empty() {
            "--- the console printed nothing ---".to_string()
        } else {
            format!(
                "--- last lines of the console ---\n{}\n---",
                tail(console, CONSOLE_TAIL_LINES)
            )
        }
    };
    if let Some(excerpt) = panic_excerpt(console) {
        return Exit::Panic { excerpt };
    }
    if watched.stopped_after_power_down && completed {
        return Exit::PoweredOff;
    }
    if let Some(what) = &watched.timeout {
        return Exit::Timeout {
            what: format!("{what}\n{}", console_tail()),
        };
    }
    if watched.completed_at.is_some() && watched.status.is_none() {
        // Completed but did not power off by itself: stopped via QMP.
        return Exit::Timeout {
            what: format!(
                "guest finished but did not power off within {} s",
                POWER_OFF_GRACE.as_secs()
            ),
        };
    }
    match shutdown_reason {
        Some("guest_shutdown") => Exit::PoweredOff,
        Some("guest_reset") => Exit::Reset,
        Some("guest_panic") => Exit::Panic {
            excerpt: "QEMU reported a guest panic".into(),
        },
        _ if watched
            .status
            .is_some_and(|s| ended_through_exit_port(spec.arch, &s)) =>
        {
            Exit::PoweredOff
        }
        _ => {
            let status = watched
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "killed".into());
            let stderr = fs::read_to_string(spec.run_dir.join(QEMU_STDERR)).unwrap_or_default();
            if completed && stderr.trim().is_empty() {
                Exit::PoweredOff
            } else {
                let stderr = if stderr.trim().is_empty() {
                    format!("(QEMU wrote nothing to stderr)\n{}", console_tail())
                } else {
                    format!("{}\n{}", stderr.trim_end(), console_tail())
                };
                Exit::QemuFailed { status, stderr }
            }
        }
    }
}

/// Copies `path` from byte `from` to its end onto stderr; returns the new
/// end.
fn stream_from(path: &Path, from: u64) -> u64 {
    use std::io::{Seek, SeekFrom, Write};
    let Ok(mut f) = fs::File::open(path) else {
        return from;
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return from;
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&buf);
    let _ = err.flush();
    from + buf.len() as u64
}

/// Whether QEMU's exit `status` is the guest ending the machine through
/// the arch's `isa-debug-exit` port (its power-off, on x86_64's microvm).
pub fn ended_through_exit_port(arch: &ArchProfile, status: &ExitStatus) -> bool {
    arch.qemu.debug_exit_port.is_some()
        && status.code() == Some(ksh_proto::debug_exit_status(ksh_proto::DEBUG_EXIT_VALUE))
}

/// Console lines shown with a timeout or a QEMU failure.
const CONSOLE_TAIL_LINES: usize = 15;

/// Removes QMP sockets (`ksh-PID-*.qmp`) of harness processes that no
/// longer run (a SIGKILLed harness cannot remove its own).
pub fn remove_stale_sockets() {
    for p in crate::process::left_by_dead(&std::env::temp_dir(), "ksh-") {
        if p.extension().is_some_and(|e| e == "qmp") {
            let _ = fs::remove_file(p);
        }
    }
}

/// How long a guest that wrote its completion record may take to power
/// off. Normally well under a second; on a loaded host an SMP guest's
/// shutdown (stopping the other vCPUs) was seen to take more than 5 s, and
/// with the host's two cores busy building other kernels an x86_64 guest
/// (on q35 then, powering off through ACPI) sometimes more than 15 s.
/// Waiting costs nothing when the guest powers off in time.
const POWER_OFF_GRACE: Duration = Duration::from_secs(40);

/// The kernel's last console line on the way to power-off
/// (`kernel_power_off()`).
const POWER_DOWN_LINE: &str = "reboot: Power down";

/// The kernel's last console line on the way to power-off or, on a machine
/// without a power-off device (x86_64 `microvm`), to the reset that ends
/// the run (`kernel_restart()`). A reset by triple fault was seen once in
/// about 25 runs not to reach QEMU.
const POWER_DOWN_LINES: [&str; 2] = [POWER_DOWN_LINE, "reboot: Restarting system"];

/// How long QEMU may take to exit once the kernel printed one of
/// [`POWER_DOWN_LINES`] after the completion record: a guest that got
/// there is done; seen once on a quiet host (x86_64 on q35 then, powering
/// off through ACPI), the power-off never came and the cell failed after
/// [`POWER_OFF_GRACE`].
const POWER_DOWN_TO_EXIT: Duration = Duration::from_secs(10);

/// A QMP socket path unique to this process and VM, short enough for
/// `sun_path`.
pub fn qmp_socket_path(label: &str) -> PathBuf {
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    std::env::temp_dir().join(format!("ksh-{}-{safe}.qmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::arch::{ARM64, X86_64};

    #[test]
    fn memory_grows_with_the_kernel() {
        let none = Path::new("/nonexistent/initrd");
        assert_eq!(memory_mib(&X86_64, 30_000, none), X86_64.qemu.memory_mib);
        assert!(memory_mib(&X86_64, 177_000, none) >= 128 + 690);
    }

    fn spec(arch: &ArchProfile, accel: Accel) -> VmSpec<'_> {
        VmSpec {
            arch,
            accel,
            kernel: PathBuf::from("/b/Image"),
            initrd: PathBuf::from("/b/initrd.gz"),
            cpus: 1,
            memory_mib: 256,
            run_dir: PathBuf::from("/r"),
            qmp_socket: PathBuf::from("/tmp/q.sock"),
            qmp: crate::vm::qmp::QmpLimits::default(),
            timeouts: Timeouts {
                first_output: Duration::from_secs(5),
                silence: Duration::from_secs(30),
                overall: Duration::from_secs(120),
            },
            guest_params: Vec::new(),
            console: Console::Log,
            gdb_port: None,
            instruction_clock: false,
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn value_after(args: &[String], flag: &str) -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    }

    #[test]
    fn arm64_tcg_command() {
        let cmd = command(&spec(&ARM64, Accel::Tcg));
        let a = args(&cmd);
        assert_eq!(cmd.get_program(), "qemu-system-aarch64");
        assert_eq!(value_after(&a, "-machine"), ["virt"]);
        assert_eq!(value_after(&a, "-cpu"), ["max,pauth-impdef=on"]);
        assert_eq!(value_after(&a, "-accel"), ["tcg,thread=multi"]);
        assert!(a.contains(&"-nodefaults".to_string()) && a.contains(&"-no-reboot".to_string()));
        let append = &value_after(&a, "-append")[0];
        assert!(
            append.contains("console=ttyAMA0") && append.contains("panic=-1"),
            "{append}"
        );
        let devices = value_after(&a, "-device");
        assert_eq!(devices[0], "virtio-serial-device,id=vser0");
        assert!(devices[1].ends_with("name=ksh.results"), "{}", devices[1]);
        assert_eq!(
            value_after(&a, "-qmp"),
            ["unix:/tmp/q.sock,server=on,wait=off"]
        );
    }

    #[test]
    fn instruction_clock_is_single_threaded_icount() {
        for arch in [&X86_64, &ARM64] {
            let a = args(&command(&VmSpec {
                instruction_clock: true,
                ..spec(arch, Accel::Tcg)
            }));
            assert_eq!(value_after(&a, "-accel"), ["tcg,thread=single"]);
            assert_eq!(value_after(&a, "-icount"), [INSTRUCTION_CLOCK]);
            let plain = args(&command(&spec(arch, Accel::Tcg)));
            assert!(value_after(&plain, "-icount").is_empty());
            // The guest's TSC counts virtual ns under icount: 1 GHz.
            let append = &value_after(&a, "-append")[0];
            assert_eq!(
                append.contains("tsc_early_khz=1000000"),
                arch.name == "x86_64",
                "{append}"
            );
        }
    }

    #[test]
    fn x86_64_guests_get_the_host_tsc_rate_under_tcg() {
        let khz = host_tsc_khz();
        if cfg!(target_arch = "x86_64") {
            let khz = khz.expect("an x86_64 host has a TSC");
            let tcg = args(&command(&spec(&X86_64, Accel::Tcg)));
            assert!(value_after(&tcg, "-append")[0].contains(&format!(" tsc_early_khz={khz}")));
        }
        let kvm = args(&command(&spec(&X86_64, Accel::Kvm)));
        assert!(!value_after(&kvm, "-append")[0].contains("tsc_early_khz"));
        let arm = args(&command(&spec(&ARM64, Accel::Tcg)));
        assert!(!value_after(&arm, "-append")[0].contains("tsc_early_khz"));
    }

    #[test]
    fn x86_64_kvm_and_tcg_commands() {
        let a = args(&command(&spec(&X86_64, Accel::Kvm)));
        assert_eq!(value_after(&a, "-accel"), ["kvm"]);
        assert_eq!(value_after(&a, "-cpu"), ["host"]);
        let a = args(&command(&spec(&X86_64, Accel::Tcg)));
        assert_eq!(value_after(&a, "-accel"), ["tcg,thread=multi"]);
        assert_eq!(value_after(&a, "-cpu"), ["max"]);
        assert!(value_after(&a, "-append")[0].contains("console=ttyS0"));
        assert_eq!(
            value_after(&a, "-device")[0],
            "virtio-serial-device,id=vser0"
        );
        assert_eq!(value_after(&a, "-serial"), ["chardev:console"]);
        assert_eq!(
            value_after(&a, "-device")[2],
            "isa-debug-exit,iobase=0xf4,iosize=0x1"
        );
        assert!(value_after(&a, "-append")[0].contains("ksh.exit_port=0xf4"));
    }

    /// A fake emulator: a shell script run with QEMU's arguments.
    fn fake_qemu(dir: &Path, script: &str) -> &'static ArchProfile {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("fake-qemu");
        fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let mut arch = X86_64;
        arch.qemu.binary = Box::leak(bin.display().to_string().into_boxed_str());
        Box::leak(Box::new(arch))
    }

    fn fake_spec<'a>(arch: &'a ArchProfile, dir: &Path, silence: u64) -> VmSpec<'a> {
        let mut s = spec(arch, Accel::Tcg);
        s.run_dir = dir.join("run");
        s.qmp_socket = dir.join("q.qmp");
        s.timeouts = Timeouts {
            first_output: Duration::from_secs(60),
            silence: Duration::from_secs(silence),
            overall: Duration::from_secs(120),
        };
        // The fakes open no QMP socket: other limits fire first, unless a
        // test is about QMP.
        s.qmp.connect = Duration::from_secs(60);
        s
    }

    /// Runs `spec`, which must time out within `limit` plus 5 s; the
    /// timeout's message.
    fn timeout_within(spec: &VmSpec, limit: u64) -> String {
        let started = Instant::now();
        let out = run(spec).unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(limit + 5), "took {took:?}");
        match out.exit {
            Exit::Timeout { what } => what,
            other => panic!("{other:?}"),
        }
    }

    /// A fake QEMU running `body` with `$c`, its console log's path.
    fn fake_with_console(dir: &Path, body: &str) -> &'static ArchProfile {
        fake_qemu(dir, &format!("{CONSOLE_OF_ARGS}\n{body}"))
    }

    /// The console path from the fake's arguments, for scripts.
    const CONSOLE_OF_ARGS: &str = r#"for a in "$@"; do case "$a" in file,id=console,path=*) c="${a#file,id=console,path=}";; esac; done"#;

    #[test]
    fn frozen_emulator_is_killed_within_the_silence_limit() {
        let d = tempfile::tempdir().unwrap();
        // Prints one console line, then stops itself like a wedged QEMU.
        let arch = fake_with_console(
            d.path(),
            "echo 'Linux version 6.12' > \"$c\"\nkill -STOP $$",
        );
        let what = timeout_within(&fake_spec(arch, d.path(), 2), 2);
        assert!(
            what.contains("silence limit")
                && what.contains("SIGKILL")
                && what.contains("Linux version 6.12"),
            "{what}"
        );
    }

    #[test]
    fn emulator_frozen_before_its_qmp_socket_is_killed_at_the_connect_limit() {
        let d = tempfile::tempdir().unwrap();
        // Stops itself at once, as a QEMU frozen right after its start.
        let arch = fake_qemu(d.path(), "kill -STOP $$");
        let mut spec = fake_spec(arch, d.path(), 60);
        spec.qmp.connect = Duration::from_secs(2);
        let what = timeout_within(&spec, 2);
        assert!(
            what.contains("QMP connect limit") && what.contains("killed with SIGKILL"),
            "{what}"
        );
    }

    #[test]
    fn killed_emulator_is_a_qemu_failure_with_the_console_tail() {
        let d = tempfile::tempdir().unwrap();
        let arch = fake_with_console(d.path(), "echo 'booting' > \"$c\"\nkill -KILL $$");
        let out = run(&fake_spec(arch, d.path(), 30)).unwrap();
        let Exit::QemuFailed { status, stderr } = &out.exit else {
            panic!("{:?}", out.exit)
        };
        assert!(status.contains("signal: 9"), "{status}");
        assert!(stderr.contains("booting"), "{stderr}");
        assert!(out.elapsed < Duration::from_secs(5));
    }

    #[test]
    fn overall_limit_fires_even_while_output_flows() {
        let d = tempfile::tempdir().unwrap();
        let arch = fake_with_console(d.path(), "while :; do echo tick >> \"$c\"; sleep 0.2; done");
        let mut spec = fake_spec(arch, d.path(), 30);
        spec.timeouts.overall = Duration::from_secs(2);
        let what = timeout_within(&spec, 2);
        assert!(what.contains("overall limit"), "{what}");
    }

    #[test]
    fn a_guest_that_powered_down_is_stopped_and_counts_as_powered_off() {
        // Each kernel line that ends a run, in parallel (each waits
        // POWER_DOWN_TO_EXIT).
        let runs: Vec<_> = POWER_DOWN_LINES
            .iter()
            .map(|line| std::thread::spawn(move || powered_down_then_stuck(line)))
            .collect();
        for r in runs {
            r.join().unwrap();
        }
    }

    fn powered_down_then_stuck(line: &str) {
        let d = tempfile::tempdir().unwrap();
        // Writes the completion record and the kernel's power-down (or
        // restart) line, then never exits (the power-off, or the microvm
        // reset, that did not come).
        let script = format!(
            "{CONSOLE_OF_ARGS}\n\
             for a in \"$@\"; do case \"$a\" in file,id=results,path=*) r=\"${{a#file,id=results,path=}}\";; esac; done\n\
             echo '{}' > \"$r\"\n\
             echo '[    8.5] {line}' > \"$c\"\n\
             while :; do sleep 1; done",
            ksh_proto::completion_record(14)
        );
        let arch = fake_qemu(d.path(), &script);
        let started = Instant::now();
        let out = run(&fake_spec(arch, d.path(), 60)).unwrap();
        let took = started.elapsed();
        assert!(
            matches!(out.exit, Exit::PoweredOff),
            "{line}: {:?}",
            out.exit
        );
        assert!(
            took >= POWER_DOWN_TO_EXIT && took < POWER_DOWN_TO_EXIT + Duration::from_secs(5),
            "{line}: took {took:?}"
        );
    }

    #[test]
    fn panic_excerpt_finds_the_panic() {
        let log = "[0.1] a\n[0.2] b\n[0.3] Kernel panic - not syncing: VFS: Unable to mount root\n[0.4] c\n";
        let e = panic_excerpt(log).unwrap();
        assert!(e.contains("Unable to mount root") && e.contains("[0.1] a"));
        assert!(panic_excerpt("all fine\n").is_none());
    }
}
