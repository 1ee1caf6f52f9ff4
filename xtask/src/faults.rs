//! `cargo xtask faults`: the harness's fault suite. Each fault is injected
//! into a real `cargo xtask test` run of one already-built cell (this very
//! binary, started as a child), and must produce its outcome within its
//! bound; then the next plain run must pass without help. Prints a table
//! (fault, time to outcome, message, left on disk, next run) and fails on
//! any miss.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::kernel::kbuild::BuildRequest;
use harness::layout;
use harness::process::{fmt_duration, pid_alive};
use harness::testrun::Cell;

use crate::flags::{FaultsArgs, KernelSelection};
use crate::selection;

/// What one fault produced.
struct Row {
    fault: &'static str,
    ok: bool,
    took: Duration,
    bound: Duration,
    message: String,
    left: String,
    next_run: String,
}

impl Row {
    /// A fault with no run after it (it changes nothing a next run would
    /// see): its own checks, within its bound.
    fn alone(
        fault: &'static str,
        ok: bool,
        (took, bound): (Duration, Duration),
        message: String,
        left: String,
    ) -> Row {
        let ok = ok && took <= bound;
        let next_run = "-".into();
        Row {
            fault,
            ok,
            took,
            bound,
            message,
            left,
            next_run,
        }
    }
}

/// Everything a fault needs to know about the cell under test.
struct Ctx {
    exe: PathBuf,
    /// The kernel line (`--kernel` of every child command).
    kernel: String,
    arch: String,
    config: String,
    silence: u64,
    work: PathBuf,
    build_dir: PathBuf,
    runs_dir: PathBuf,
    vmlinux: PathBuf,
    image: PathBuf,
    initrd: PathBuf,
    seq: std::cell::Cell<u32>,
}

/// A `cargo xtask test` child with its output in files.
struct TestRun {
    child: Child,
    out: PathBuf,
    junit: PathBuf,
    started: Instant,
}

struct Finished {
    status: ExitStatus,
    output: String,
    junit: Option<String>,
    took: Duration,
    pid: u32,
}

/// The cases each fault makes fail (its row checks them), for the
/// sensitivity map (`cargo xtask sensitivity`). Faults not listed make no
/// case fail: the harness recovers from them (a truncated output is
/// rebuilt, a concurrent run waits) or stops before any case.
pub const FAULT_CASES: &[(&str, &[&str])] = &[
    ("frozen-qemu-at-start", &["boot/vm-completed"]),
    ("frozen-qemu-before-console", &["boot/vm-completed"]),
    ("frozen-qemu", &["boot/vm-completed"]),
    ("killed-qemu", &["boot/vm-completed"]),
    ("module-panic", &["boot/vm-completed"]),
    ("module-hang", &["boot/vm-completed"]),
    ("module-warn", &["boot/no-kernel-warnings"]),
    ("module-warn-in-window", &["boot/no-kernel-warnings"]),
];

const FAULTS: &[&str] = &[
    "frozen-qemu-at-start",
    "frozen-qemu-before-console",
    "frozen-qemu",
    "killed-qemu",
    "killed-harness",
    "killed-during-make",
    "truncated-vmlinux",
    "truncated-image",
    "truncated-initramfs",
    "concurrent-runs",
    "module-panic",
    "module-hang",
    "module-warn",
    "module-warn-in-window",
    "full-run-dir",
    "moved-checkout",
    "interrupted-unpack",
    "empty-filter",
    "bad-junit-path",
];

pub fn run(args: FaultsArgs) -> Result<i32> {
    let started = Instant::now();
    for f in &args.only {
        if !FAULTS.contains(&f.as_str()) {
            bail!("unknown fault '{f}'; known: {}", FAULTS.join(", "));
        }
    }
    let sel = KernelSelection {
        arches: vec![args.arch.clone()],
        configs: vec![args.config.clone()],
        toolchains: Vec::new(),
        baseline: false,
        kernel_tree: None,
        kernel_versions: args.kernel.clone(),
        jobs: None,
    };
    let id = selection::cells(&sel)?.remove(0);
    let source = selection::prepare_source(&sel, selection::kernel(&sel)?)?;
    let cell = Cell::new(&id, &source);
    let (arch, config) = (cell.id.arch, cell.id.label());
    let build_dir = BuildRequest {
        cell: &cell.id,
        source: &source,
        jobs: 1,
    }
    .build_dir();
    if !build_dir.join("vmlinux").is_file() {
        bail!(
            "no built kernel in {}: run `cargo xtask test --kernel {} --arch {} --config {config}` first",
            build_dir.display(),
            cell.id.kernel,
            arch.name
        );
    }
    let work = std::env::temp_dir().join(format!("ksh-faults-run{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    layout::ensure_dir(&work)?;
    let ctx = Ctx {
        exe: harness::process::self_exe()?,
        kernel: cell.id.kernel.to_string(),
        arch: arch.name.to_string(),
        config: config.clone(),
        silence: args.vm_silence,
        work: work.clone(),
        vmlinux: build_dir.join("vmlinux"),
        image: build_dir.join(arch.image),
        initrd: build_dir.join(harness::testrun::INITRAMFS),
        build_dir,
        runs_dir: cell.runs_dir(),
        seq: std::cell::Cell::new(0),
    };

    // The cell must pass before any fault is injected, or nothing below
    // means anything.
    eprintln!("ksh-faults: baseline run of {}", cell.name());
    let base = ctx.test(&[], &[])?.wait()?;
    if !base.status.success() {
        bail!(
            "the cell does not pass without faults (exit {}); fix that first:\n{}",
            base.status,
            tail(&base.output, 30)
        );
    }

    let mut rows = Vec::new();
    for &fault in FAULTS {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == fault) {
            continue;
        }
        eprintln!("ksh-faults: {fault}");
        let row = match fault {
            "frozen-qemu-at-start" => frozen_early(&ctx, fault, Moment::AtStart),
            "frozen-qemu-before-console" => frozen_early(&ctx, fault, Moment::BeforeConsole),
            "frozen-qemu" => frozen_or_killed(&ctx, fault, libc::SIGSTOP),
            "killed-qemu" => frozen_or_killed(&ctx, fault, libc::SIGKILL),
            "killed-harness" => killed_harness(&ctx),
            "killed-during-make" => killed_during_make(&ctx, &source.tree),
            "truncated-vmlinux" => truncated(&ctx, fault, &ctx.vmlinux, Duration::from_secs(600)),
            // x86_64 boots vmlinux itself: the image is the file above.
            "truncated-image" if ctx.image == ctx.vmlinux => {
                eprintln!(
                    "ksh-faults: truncated-image: {} boots vmlinux itself (covered by truncated-vmlinux); `--arch arm64` truncates its Image",
                    ctx.arch
                );
                continue;
            }
            "truncated-image" => truncated(&ctx, fault, &ctx.image, Duration::from_secs(600)),
            "truncated-initramfs" => truncated(&ctx, fault, &ctx.initrd, Duration::from_secs(60)),
            "concurrent-runs" => concurrent(&ctx),
            "module-panic" => module_fault(&ctx, "module-panic", "panic"),
            "module-hang" => module_fault(&ctx, "module-hang", "hang"),
            "module-warn" => module_warning(&ctx, fault, "warn"),
            "module-warn-in-window" => module_warning(&ctx, fault, "warn-in-window"),
            "full-run-dir" => full_run_dir(&ctx),
            "moved-checkout" => moved_checkout(&ctx),
            "interrupted-unpack" => interrupted_unpack(&ctx),
            "empty-filter" => empty_filter(&ctx),
            "bad-junit-path" => bad_junit(&ctx),
            _ => unreachable!(),
        };
        let row = row.unwrap_or_else(|e| Row {
            fault,
            ok: false,
            took: Duration::ZERO,
            bound: Duration::ZERO,
            message: format!("suite error: {e:#}"),
            left: "?".into(),
            next_run: "-".into(),
        });
        eprintln!(
            "ksh-faults: {fault}: {} in {}",
            if row.ok { "ok" } else { "MISSED" },
            fmt_duration(row.took)
        );
        rows.push(row);
    }
    print_table(&rows);
    let missed = rows.iter().filter(|r| !r.ok).count();
    println!(
        "\nfault suite: {} of {} faults handled as required, in {}",
        rows.len() - missed,
        rows.len(),
        fmt_duration(started.elapsed())
    );
    let _ = fs::remove_dir_all(&work);
    Ok(if missed == 0 { 0 } else { 1 })
}

impl Ctx {
    /// Starts `cargo xtask test` on the cell with `extra` flags and libtest
    /// arguments `lt`.
    fn test(&self, extra: &[&str], lt: &[&str]) -> Result<TestRun> {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let out = self.work.join(format!("run{n}.log"));
        let junit = self.work.join(format!("run{n}.xml"));
        let log = fs::File::create(&out)?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(["test", "--kernel", &self.kernel, "--arch", &self.arch])
            .args(["--config", &self.config])
            .args(["--accel", "tcg"])
            .arg("--junit")
            .arg(&junit)
            .args(extra);
        if !lt.is_empty() {
            cmd.arg("--").args(lt);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        harness::process::die_with_parent(&mut cmd, libc::SIGKILL);
        let child = cmd.spawn().context("starting cargo xtask test")?;
        Ok(TestRun {
            child,
            out,
            junit,
            started: Instant::now(),
        })
    }

    /// Runs the cell plainly: the "next run passed unaided" column.
    /// The row of a fault whose own checks gave `ok`: it also needs its
    /// outcome within `bound`, nothing `left` behind, and the next plain
    /// run (started here, after `left` was taken) to pass.
    fn row(
        &self,
        fault: &'static str,
        ok: bool,
        (took, bound): (Duration, Duration),
        message: String,
        left: &[String],
    ) -> Row {
        let (next_ok, next_run) = self.next_run();
        Row {
            fault,
            ok: ok && took <= bound && left.is_empty() && next_ok,
            took,
            bound,
            message,
            left: describe_left(left),
            next_run,
        }
    }

    fn next_run(&self) -> (bool, String) {
        match self.test(&[], &[]).and_then(|t| t.wait()) {
            Ok(f) if f.status.success() => (true, format!("passed ({})", fmt_duration(f.took))),
            Ok(f) => (
                false,
                format!("FAILED ({}): {}", f.status, first_failure(&f.output)),
            ),
            Err(e) => (false, format!("error: {e:#}")),
        }
    }

    /// The run dir a test process with this PID used.
    fn run_dir_of(&self, pid: u32) -> Option<PathBuf> {
        let suffix = format!("-{pid}");
        fs::read_dir(&self.runs_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
            })
    }

    /// What a finished (or killed) test process with this PID left behind.
    fn leftovers(&self, pid: u32, qemu: Option<u32>) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(q) = qemu {
            if pid_alive(q) && !is_zombie(q) {
                left.push(format!("QEMU {q} still running"));
            }
        }
        for c in descendants(pid) {
            left.push(format!("process {} ({}) still running", c.0, c.1));
        }
        let sock_prefix = format!("ksh-{pid}-");
        if let Ok(rd) = fs::read_dir(std::env::temp_dir()) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&sock_prefix) {
                    left.push(format!("socket {}", e.path().display()));
                }
            }
        }
        if let Ok(rd) = fs::read_dir(&self.build_dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().contains(".tmp-") {
                    left.push(format!("temp file {}", e.path().display()));
                }
            }
        }
        left
    }
}

impl Finished {
    /// Whether the JUnit file says `boot/vm-completed` failed.
    fn vm_case_failed(&self) -> bool {
        self.junit
            .as_deref()
            .is_some_and(|j| j.contains("name=\"vm-completed\"") && j.contains("<failure"))
    }
}

impl TestRun {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait(mut self) -> Result<Finished> {
        self.wait_bounded(Duration::from_secs(900))
    }

    /// Waits at most `bound` past now; kills the run (and fails) beyond it.
    fn wait_bounded(&mut self, bound: Duration) -> Result<Finished> {
        let deadline = Instant::now() + bound;
        let status = loop {
            if let Some(st) = self.child.try_wait()? {
                break st;
            }
            if Instant::now() > deadline {
                let pid = self.pid();
                for (c, _) in descendants(pid) {
                    // SAFETY: plain syscall on a process of our own run.
                    unsafe { libc::kill(c as i32, libc::SIGKILL) };
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "cargo xtask test did not finish within {}:\n{}",
                    fmt_duration(bound),
                    tail(&fs::read_to_string(&self.out).unwrap_or_default(), 15)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Ok(Finished {
            status,
            output: fs::read_to_string(&self.out).unwrap_or_default(),
            junit: fs::read_to_string(&self.junit).ok(),
            took: self.started.elapsed(),
            pid: self.pid(),
        })
    }

    /// Waits until this run's QEMU has printed on the console; returns its
    /// PID.
    fn wait_for_console(&mut self, ctx: &Ctx) -> Result<u32> {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "the run ended ({st}) before its VM spoke:\n{}",
                    tail(&fs::read_to_string(&self.out).unwrap_or_default(), 15)
                );
            }
            let qemu = descendants(self.pid())
                .into_iter()
                .find(|(_, comm)| comm.starts_with("qemu-system"));
            let console = ctx
                .run_dir_of(self.pid())
                .map(|d| d.join(harness::vm::qemu::CONSOLE_LOG));
            if let (Some((q, _)), Some(c)) = (qemu, console) {
                if fs::metadata(&c).map(|m| m.len()).unwrap_or(0) > 0 {
                    return Ok(q);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("no VM console output within 300 s")
    }
}

/// The QMP limits of a test run's VM (`harness::vm::qmp::QmpLimits`): a
/// frozen QEMU is killed when the current QMP step passes its limit.
fn qmp_limits() -> harness::vm::qmp::QmpLimits {
    harness::vm::qmp::QmpLimits::default()
}

/// SIGSTOP (a wedged emulator) or SIGKILL QEMU once the guest is booting
/// (its console spoke): the cell must fail within the QMP reply limit
/// (plus one heartbeat) + 5 s for a frozen QEMU, at once for a killed one,
/// with the QMP step or the signal named, leave no QEMU and no socket
/// behind, and still report and write JUnit.
fn frozen_or_killed(ctx: &Ctx, fault: &'static str, sig: i32) -> Result<Row> {
    let mut run = ctx.test(&[], &[])?;
    let qemu = run.wait_for_console(ctx)?;
    // SAFETY: plain syscall on our own grandchild.
    unsafe { libc::kill(qemu as i32, sig) };
    let t0 = Instant::now();
    let q = qmp_limits();
    let (bound, want) = if sig == libc::SIGSTOP {
        (
            q.reply + q.heartbeat + Duration::from_secs(5),
            "QMP reply to query-status limit",
        )
    } else {
        (Duration::from_secs(5), "QEMU failed (signal: 9")
    };
    finish_vm_fault(ctx, fault, run, qemu, t0, bound, &[want])
}

/// The moments before a booting guest at which [`frozen_early`] stops QEMU.
#[derive(Clone, Copy, PartialEq)]
enum Moment {
    /// As soon as the QEMU process exists (before its QMP greeting).
    AtStart,
    /// Its QMP socket is up, its console has not spoken.
    BeforeConsole,
}

/// SIGSTOP QEMU before the guest speaks: right after QEMU's start (no QMP
/// greeting yet), or once its QMP socket is up but before the first
/// console byte. A blocking QMP client waits forever on either; the cell
/// must fail within the QMP step's limit + 5 s naming the step.
fn frozen_early(ctx: &Ctx, fault: &'static str, moment: Moment) -> Result<Row> {
    let mut run = ctx.test(&[], &[])?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let socket_prefix = format!("ksh-{}-", run.pid());
    let (qemu, spoke) = loop {
        if let Some(st) = run.child.try_wait()? {
            bail!("the run ended ({st}) before its QEMU started");
        }
        if Instant::now() > deadline {
            bail!("no QEMU within 300 s");
        }
        let qemu = descendants(run.pid())
            .into_iter()
            .find(|(_, comm)| comm.starts_with("qemu-system"));
        if let Some((q, _)) = qemu {
            let socket_up = moment == Moment::AtStart
                || fs::read_dir(std::env::temp_dir())?
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&socket_prefix));
            if socket_up {
                if moment == Moment::BeforeConsole {
                    // Time for the harness to connect and be greeted
                    // (it polls every 25 ms).
                    std::thread::sleep(Duration::from_millis(100));
                }
                // SAFETY: plain syscall on our own grandchild.
                unsafe { libc::kill(q as i32, libc::SIGSTOP) };
                let console = ctx
                    .run_dir_of(run.pid())
                    .map(|d| d.join(harness::vm::qemu::CONSOLE_LOG));
                let spoke = console.is_some_and(|c| fs::metadata(c).is_ok_and(|m| m.len() > 0));
                break (q, spoke);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let t0 = Instant::now();
    let q = qmp_limits();
    let (bound, wants): (Duration, &[&str]) = match moment {
        // Which step it was depends on where in the conversation the
        // SIGSTOP landed; any QMP step's limit is the right answer.
        Moment::AtStart => (
            q.connect.max(q.greeting) + Duration::from_secs(5),
            &["QMP connect limit", "QMP greeting limit"],
        ),
        Moment::BeforeConsole => (
            q.greeting.max(q.reply) + q.heartbeat + Duration::from_secs(5),
            &[
                "QMP greeting limit",
                "QMP qmp_capabilities limit",
                "QMP reply to query-status limit",
            ],
        ),
    };
    let mut row = finish_vm_fault(ctx, fault, run, qemu, t0, bound, wants)?;
    if spoke {
        row.ok = false;
        row.message = format!("moment missed: the console had spoken; {}", row.message);
    }
    Ok(row)
}

/// Waits for a run whose QEMU got a fault at `t0` and judges it: exit 101,
/// one of `wants` in the output, `boot/vm-completed` failed in JUnit,
/// within `bound`, nothing left behind, and the next plain run passes.
fn finish_vm_fault(
    ctx: &Ctx,
    fault: &'static str,
    mut run: TestRun,
    qemu: u32,
    t0: Instant,
    bound: Duration,
    wants: &[&str],
) -> Result<Row> {
    let f = run.wait_bounded(bound + Duration::from_secs(60))?;
    let took = t0.elapsed();
    let vm_case_failed = f.vm_case_failed();
    let message = wants.iter().find_map(|w| line_with(&f.output, w));
    let left = ctx.leftovers(f.pid, Some(qemu));
    Ok(ctx.row(
        fault,
        f.status.code() == Some(101) && message.is_some() && vm_case_failed,
        (took, bound),
        message.unwrap_or_else(|| format!("(none of {wants:?}) {}", first_failure(&f.output))),
        &left,
    ))
}

/// The guest's probe module panics, or never returns from its init
/// (`ksh_probe.fault=`, a test-only module parameter): the cell must fail
/// with the kernel panic, or the silence limit, named together with the
/// console line the module printed, within its bound, leave nothing
/// behind, write JUnit, and the next plain run must pass.
fn module_fault(ctx: &Ctx, fault: &'static str, kind: &str) -> Result<Row> {
    let silence = ctx.silence.to_string();
    let param = format!("{}.fault={kind}", ksh_proto::MODULE_NAME);
    let mut run = ctx.test(&["--vm-silence", &silence, "--guest-param", &param], &[])?;
    let (bound, want) = if kind == "panic" {
        (Duration::from_secs(60), "kernel panic")
    } else {
        (
            Duration::from_secs(60 + ctx.silence),
            "silence limit: no console or results output",
        )
    };
    let f = run.wait_bounded(bound + Duration::from_secs(60))?;
    let marker = format!("fault={kind} requested");
    let vm_case_failed = f.vm_case_failed();
    let message = line_with(&f.output, want);
    let console_quoted = f.output.contains(&marker);
    let left = ctx.leftovers(f.pid, None);
    let ok = f.status.code() == Some(101) && message.is_some() && console_quoted && vm_case_failed;
    let message = match message {
        Some(m) if console_quoted => format!("{m} (console: ...{marker})"),
        Some(m) => format!("{m} (the console line '{marker}' is not quoted)"),
        None => format!("(no '{want}') {}", first_failure(&f.output)),
    };
    Ok(ctx.row(fault, ok, (f.took, bound), message, &left))
}

/// The probe module WARN()s in its init, or inside the window in which a
/// probe asks the kernel for a stack dump (`ksh_probe.fault=warn` and
/// `warn-in-window`): `boot/no-kernel-warnings` must fail quoting the
/// WARNING line, and it must be the only failing case (the VM completed,
/// every probe passed), within the cell's usual time.
fn module_warning(ctx: &Ctx, fault: &'static str, kind: &str) -> Result<Row> {
    let param = format!("{}.fault={kind}", ksh_proto::MODULE_NAME);
    let mut run = ctx.test(&["--guest-param", &param], &[])?;
    let bound = Duration::from_secs(120);
    let f = run.wait_bounded(bound + Duration::from_secs(60))?;
    let failed = f.junit.as_deref().map(failed_cases).unwrap_or_default();
    let only_warnings = failed == ["no-kernel-warnings"];
    let message = line_with(&f.output, "WARNING: CPU");
    let left = ctx.leftovers(f.pid, None);
    let ok = f.status.code() == Some(101)
        && only_warnings
        && message.as_deref().is_some_and(|m| m.contains("ksh_probe"));
    let message = match message {
        Some(m) if only_warnings => m,
        Some(m) => format!("failed cases {failed:?}, not only no-kernel-warnings; {m}"),
        None => format!(
            "(no WARNING line quoted; failed cases {failed:?}) {}",
            first_failure(&f.output)
        ),
    };
    Ok(ctx.row(fault, ok, (f.took, bound), message, &left))
}

/// The names of the failed `<testcase>`s of a JUnit file.
fn failed_cases(junit: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in junit.split("<testcase ").skip(1) {
        let case = part.split("</testcase>").next().unwrap_or(part);
        if case.contains("<failure") {
            if let Some(name) = case
                .split(" name=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// SIGKILL the harness itself while its VM runs: QEMU must die with it
/// (PR_SET_PDEATHSIG) within 2 s; the next run removes the dead run's QMP
/// socket and passes.
fn killed_harness(ctx: &Ctx) -> Result<Row> {
    let mut run = ctx.test(&[], &[])?;
    let qemu = run.wait_for_console(ctx)?;
    let pid = run.pid();
    run.child.kill()?;
    let _ = run.child.wait();
    let t0 = Instant::now();
    let bound = Duration::from_secs(2);
    while pid_alive(qemu) && !is_zombie(qemu) && t0.elapsed() < bound + Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    let qemu_gone = !pid_alive(qemu) || is_zombie(qemu);
    let left_now = ctx.leftovers(pid, Some(qemu));
    let (next_ok, next_run) = ctx.next_run();
    let left_after = ctx.leftovers(pid, Some(qemu));
    Ok(Row {
        fault: "killed-harness",
        ok: qemu_gone && took <= bound && left_after.is_empty() && next_ok,
        took,
        bound,
        message: if qemu_gone {
            "QEMU died with the harness".into()
        } else {
            "QEMU outlived the harness".into()
        },
        left: if left_now.is_empty() {
            "nothing".into()
        } else {
            format!(
                "{}; next run {}",
                describe_left(&left_now),
                if left_after.is_empty() {
                    "removed it"
                } else {
                    "did NOT remove it"
                }
            )
        },
        next_run,
    })
}

/// SIGKILL the harness while `make` runs (after touching
/// `kernel/kallsyms.c` so there is something to build): every process of
/// the build (sub-makes, compilers) must be gone within 5 s, and the next
/// run must finish the build and pass.
fn killed_during_make(ctx: &Ctx, tree: &Path) -> Result<Row> {
    let file = tree.join("kernel/kallsyms.c");
    fs::File::options()
        .write(true)
        .open(&file)?
        .set_modified(std::time::SystemTime::now())?;
    let mut run = ctx.test(&[], &[])?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let group = loop {
        if let Some(st) = run.child.try_wait()? {
            bail!("the run ended ({st}) before make started");
        }
        if let Some((p, _)) = descendants(run.pid())
            .into_iter()
            .find(|(_, c)| c == "make")
        {
            break pgrp_of(p).context("reading make's process group")?;
        }
        if Instant::now() > deadline {
            bail!("make did not start within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let the build fan out (sub-makes, compilers).
    std::thread::sleep(Duration::from_secs(3));
    let before = group_members(group).len();
    let pid = run.pid();
    run.child.kill()?;
    let _ = run.child.wait();
    let t0 = Instant::now();
    let bound = Duration::from_secs(5);
    while !group_members(group).is_empty() && t0.elapsed() < bound + Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = t0.elapsed();
    let left: Vec<String> = group_members(group)
        .into_iter()
        .map(|(p, c)| format!("process {p} ({c}) still running"))
        .chain(ctx.leftovers(pid, None))
        .collect();
    let message = format!("{before} build processes; all gone: {}", left.is_empty());
    Ok(ctx.row("killed-during-make", true, (took, bound), message, &left))
}

/// Truncates a cached output to half its size (under the build dir's lock,
/// so no other harness process is building): the next run must notice the
/// stamp mismatch, say so in one line, rebuild it and pass.
fn truncated(ctx: &Ctx, fault: &'static str, file: &Path, bound: Duration) -> Result<Row> {
    {
        let _lock = layout::lock(&ctx.build_dir.with_extension("lock"))?;
        let len = fs::metadata(file)?.len();
        fs::File::options()
            .write(true)
            .open(file)?
            .set_len(len / 2)
            .with_context(|| format!("truncating {}", file.display()))?;
    }
    let mut run = ctx.test(&[], &[])?;
    let f = run.wait_bounded(bound + Duration::from_secs(60))?;
    let message = line_with(&f.output, "does not match its stamp").map(|m| {
        m.replace(&format!("{}/", ctx.build_dir.display()), "")
            .replace(&format!("{}/{}/{}: ", ctx.kernel, ctx.arch, ctx.config), "")
    });
    let left = ctx.leftovers(f.pid, None);
    let ok = f.status.success() && message.is_some();
    let message = match message {
        Some(m) if f.status.success() => format!("{m} -> passed"),
        Some(m) => format!("{m} -> FAILED: {}", first_failure(&f.output)),
        None => format!("(no notice) {}", first_failure(&f.output)),
    };
    Ok(ctx.row(fault, ok, (f.took, bound), message, &left))
}

/// Two runs of the same cell at once: both pass, each with its own run dir
/// holding its own complete results.
fn concurrent(ctx: &Ctx) -> Result<Row> {
    let t0 = Instant::now();
    let a = ctx.test(&[], &[])?;
    let b = ctx.test(&[], &[])?;
    let bound = Duration::from_secs(180);
    let (mut a, mut b) = (a, b);
    let fa = a.wait_bounded(bound)?;
    let fb = b.wait_bounded(bound)?;
    let took = t0.elapsed();
    let complete = |pid: u32| {
        ctx.run_dir_of(pid)
            .and_then(|d| fs::read_to_string(d.join(harness::vm::qemu::RESULTS_FILE)).ok())
            .is_some_and(|r| harness::vm::qemu::has_completion_record(&r))
    };
    let (da, db) = (ctx.run_dir_of(fa.pid), ctx.run_dir_of(fb.pid));
    let separate = da.is_some() && db.is_some() && da != db;
    let mut left = ctx.leftovers(fa.pid, None);
    left.extend(ctx.leftovers(fb.pid, None));
    let ok = fa.status.success()
        && fb.status.success()
        && separate
        && complete(fa.pid)
        && complete(fb.pid);
    let message = format!(
        "exits {} and {}; run dirs {} and {}",
        fa.status,
        fb.status,
        da.as_deref().map(short).unwrap_or("-".into()),
        db.as_deref().map(short).unwrap_or("-".into()),
    );
    Ok(ctx.row("concurrent-runs", ok, (took, bound), message, &left))
}

/// The cell's runs dir on a 64 KiB tmpfs the suite mounts over it (root
/// only): the console log fills it, and the cell must fail saying "no
/// space left on device" within its bound, not "the guest crashed"; after
/// the unmount the next run passes.
fn full_run_dir(ctx: &Ctx) -> Result<Row> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("mounting a small tmpfs needs root; run the suite as root");
    }
    layout::ensure_dir(&ctx.runs_dir)?;
    let mount = |args: &[&str]| -> Result<()> {
        let st = Command::new(args[0]).args(&args[1..]).status()?;
        if !st.success() {
            bail!("{} failed ({st})", args.join(" "));
        }
        Ok(())
    };
    let dir = ctx.runs_dir.display().to_string();
    mount(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=64k",
        "ksh-faults-full",
        &dir,
    ])?;
    let bound = Duration::from_secs(90);
    let f = ctx.test(&[], &[]).and_then(|t| t.wait());
    let unmounted = mount(&["umount", &dir]);
    let f = f?;
    unmounted?;
    let message = line_with(&f.output, "No space left on device")
        .or_else(|| line_with(&f.output, "no space left on device"));
    let (next_ok, next_run) = ctx.next_run();
    Ok(Row {
        fault: "full-run-dir",
        ok: f.status.code() == Some(101)
            && message.is_some()
            && f.junit.is_some()
            && f.took <= bound
            && next_ok,
        took: f.took,
        bound,
        message: message
            .unwrap_or_else(|| format!("(no 'no space left') {}", first_failure(&f.output))),
        left: "nothing (the tmpfs is unmounted)".into(),
        next_run,
    })
}

/// A copy of the checkout, run with the same (warm) binary as cargo would
/// run it there (`CARGO_MANIFEST_DIR` of the copy): it must use the copy's
/// configs. A variant that exists only in the copy is listed there, and
/// rejected by the original.
fn moved_checkout(ctx: &Ctx) -> Result<Row> {
    let bound = Duration::from_secs(30);
    let t0 = Instant::now();
    let root = layout::project_root();
    let copy = ctx.work.join("moved-checkout");
    let files = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .output()
        .context("git ls-files")?;
    for f in files.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(f)?);
        let dst = copy.join(rel);
        layout::ensure_dir(dst.parent().unwrap())?;
        if let Ok(md) = fs::symlink_metadata(root.join(rel)) {
            if md.is_file() {
                fs::copy(root.join(rel), &dst)?;
            }
        }
    }
    let variant = "ksh-moved-only";
    fs::write(
        copy.join(format!("kernel-configs/variants/{variant}.config")),
        "# exists only in the copy made by the fault suite
",
    )?;
    let list = |manifest: &Path| -> Result<(bool, String)> {
        let out = Command::new(&ctx.exe)
            .args([
                "test",
                "--kernel",
                &ctx.kernel,
                "--arch",
                &ctx.arch,
                "--config",
                variant,
                "--",
                "--list",
            ])
            .env("CARGO_MANIFEST_DIR", manifest)
            .env_remove("KSH_CACHE_DIR")
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    };
    let (copy_ok, copy_out) = list(&copy.join("xtask"))?;
    let (orig_ok, orig_out) = list(&root.join("xtask"))?;
    let took = t0.elapsed();
    let want = format!("{}/{}/{variant}/boot/", ctx.kernel, ctx.arch);
    let listed = copy_ok && copy_out.contains(&want);
    let _ = fs::remove_dir_all(&copy);
    let message = format!(
        "the copy lists {variant}: {listed}; the original: {}",
        if orig_ok {
            "lists it too (uses the wrong checkout)".to_string()
        } else {
            first_failure(&orig_out)
        }
    );
    let ok = listed && !orig_ok;
    Ok(Row::alone(
        "moved-checkout",
        ok,
        (took, bound),
        message,
        "nothing".into(),
    ))
}

/// The harness interrupted while it unpacks Debian's tarball (into a
/// scratch cache, `KSH_CACHE_DIR`): Ctrl-C must remove the staging dir at
/// once; SIGKILL must take `tar` and `xz` with it (they die with their
/// parent) and leave a staging dir that the next run removes before it
/// unpacks again. No kernel is built.
fn interrupted_unpack(ctx: &Ctx) -> Result<Row> {
    let cache = ctx.work.join("unpack-cache");
    let src = layout::src_root_in(&cache);
    let t_all = Instant::now();
    let start = || -> Result<Child> {
        let mut cmd = Command::new(&ctx.exe);
        cmd.args(["build", "--kernel", &ctx.kernel, "--arch", &ctx.arch])
            .args(["--config", &ctx.config])
            .env("KSH_CACHE_DIR", &cache)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        harness::process::die_with_parent(&mut cmd, libc::SIGKILL);
        Ok(cmd.spawn()?)
    };
    let staging_dirs = || -> Vec<PathBuf> {
        fs::read_dir(&src)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().contains(".staging-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // Waits until `child` is unpacking (tar running, a staging dir exists).
    let unpacking = |child: &mut Child| -> Result<Vec<u32>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = child.try_wait()? {
                bail!("the build ended ({st}) before it unpacked anything");
            }
            let tools: Vec<u32> = descendants(child.id())
                .into_iter()
                .filter(|(_, c)| c == "tar" || c == "xz")
                .map(|(p, _)| p)
                .collect();
            if !tools.is_empty() && !staging_dirs().is_empty() {
                std::thread::sleep(Duration::from_secs(2));
                return Ok(tools);
            }
            if Instant::now() > deadline {
                bail!("no unpacking within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let wait_exit = |child: &mut Child, bound: Duration| -> Result<Duration> {
        let t0 = Instant::now();
        while child.try_wait()?.is_none() {
            if t0.elapsed() > bound {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the harness did not exit within {}", fmt_duration(bound));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(t0.elapsed())
    };
    let alive = |pids: &[u32]| -> Vec<String> {
        pids.iter()
            .filter(|&&p| pid_alive(p) && !is_zombie(p))
            .map(|p| format!("process {p} still running"))
            .collect()
    };
    let bound = Duration::from_secs(5);
    let mut problems = Vec::new();

    // 1. Ctrl-C.
    let mut run = start()?;
    let tools = unpacking(&mut run)?;
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
    let took = wait_exit(&mut run, bound)?;
    std::thread::sleep(Duration::from_millis(500));
    problems.extend(alive(&tools));
    problems.extend(
        staging_dirs()
            .iter()
            .map(|d| format!("Ctrl-C left {}", short(d))),
    );

    // 2. SIGKILL: tar and xz die with the harness; the staging dir stays.
    let mut run = start()?;
    let tools = unpacking(&mut run)?;
    run.kill()?;
    let _ = run.wait();
    std::thread::sleep(Duration::from_secs(2));
    problems.extend(alive(&tools));
    let stale = staging_dirs();
    if stale.is_empty() {
        problems.push("SIGKILL left no staging dir to clean (the fault was not injected)".into());
    }

    // 3. The next run removes it before unpacking again (then is stopped).
    let mut run = start()?;
    let _ = unpacking(&mut run)?;
    let left_stale: Vec<String> = stale
        .iter()
        .filter(|d| d.exists())
        .map(|d| format!("the next run kept {}", short(d)))
        .collect();
    problems.extend(left_stale);
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
    let _ = wait_exit(&mut run, bound);
    let _ = fs::remove_dir_all(&cache);
    let message = format!(
        "Ctrl-C: exit in {}; SIGKILL: tar/xz gone, staging removed by the next run ({} in all)",
        fmt_duration(took),
        fmt_duration(t_all.elapsed())
    );
    let (ok, left) = (problems.is_empty(), describe_left(&problems));
    Ok(Row::alone(
        "interrupted-unpack",
        ok,
        (took, bound),
        message,
        left,
    ))
}

/// `-- --exact nosuchtest`: an error (exit 2) before any work; with
/// `--allow-no-tests` a pass.
fn empty_filter(ctx: &Ctx) -> Result<Row> {
    let bound = Duration::from_secs(10);
    let f = ctx.test(&[], &["--exact", "nosuchtest"])?.wait()?;
    let allowed = ctx
        .test(&["--allow-no-tests"], &["--exact", "nosuchtest"])?
        .wait()?;
    let message = line_with(&f.output, "selects none");
    let ok = f.status.code() == Some(2) && message.is_some() && allowed.status.success();
    let message = format!(
        "{}; with --allow-no-tests: {}",
        message.unwrap_or_else(|| format!("exit {}", f.status)),
        allowed.status
    );
    Ok(Row::alone(
        "empty-filter",
        ok,
        (f.took, bound),
        message,
        "nothing".into(),
    ))
}

/// `--junit` into a directory that does not exist: an error before any
/// build or boot.
fn bad_junit(ctx: &Ctx) -> Result<Row> {
    let bound = Duration::from_secs(5);
    let bad = ctx.work.join("no-such-dir/report.xml");
    let mut cmd = Command::new(&ctx.exe);
    cmd.args(["test", "--kernel", &ctx.kernel, "--arch", &ctx.arch])
        .args(["--config", &ctx.config])
        .arg("--junit")
        .arg(&bad);
    let t0 = Instant::now();
    let out = cmd.output()?;
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let message = line_with(&text, "does not exist");
    let booted = text.contains("kernel source:");
    let ok = out.status.code() == Some(2) && message.is_some() && !booted;
    let message = message.unwrap_or_else(|| tail(&text, 2));
    Ok(Row::alone(
        "bad-junit-path",
        ok,
        (took, bound),
        message,
        "nothing".into(),
    ))
}

/// The fields of `/proc/PID/stat` the suite reads.
struct ProcStat {
    pid: u32,
    comm: String,
    state: char,
    ppid: u32,
    pgrp: u32,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    Some(ProcStat {
        pid,
        comm: stat[open + 1..close].to_string(),
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
    })
}

/// Every process that has not exited (zombies left out).
fn live_processes() -> Vec<ProcStat> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .filter_map(proc_stat)
        .filter(|p| p.state != 'Z')
        .collect()
}

/// (pid, comm) of every live descendant of `pid`.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let all = live_processes();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            out.push((p.pid, p.comm.clone()));
            frontier.push(p.pid);
        }
    }
    out
}

/// The process group of `pid`.
fn pgrp_of(pid: u32) -> Option<u32> {
    proc_stat(pid).map(|p| p.pgrp)
}

/// (pid, comm) of the live processes in process group `pgrp`.
fn group_members(pgrp: u32) -> Vec<(u32, String)> {
    live_processes()
        .into_iter()
        .filter(|p| p.pgrp == pgrp)
        .map(|p| (p.pid, p.comm))
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|p| p.state == 'Z')
}

fn line_with(text: &str, needle: &str) -> Option<String> {
    text.lines()
        .find(|l| l.contains(needle))
        .map(|l| l.trim().trim_start_matches("ksh: ").to_string())
}

/// The first failure message libtest printed, or the last line.
fn first_failure(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    if let Some(i) = lines.iter().position(|l| l.starts_with("---- ")) {
        return lines[i..]
            .iter()
            .skip(1)
            .take(2)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
    }
    lines.last().copied().unwrap_or("").to_string()
}

fn tail(text: &str, n: usize) -> String {
    harness::vm::qemu::tail(text, n)
}

fn short(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn describe_left(left: &[String]) -> String {
    if left.is_empty() {
        "nothing".into()
    } else {
        left.join(", ")
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<20} {:<7} {:>17}  {:<48}  {:<16}  next run",
        "fault", "result", "time (bound)", "message", "left on disk"
    );
    for r in rows {
        let msg: String = r.message.chars().take(120).collect();
        println!(
            "{:<20} {:<7} {:>17}  {:<48}  {:<16}  {}",
            r.fault,
            if r.ok { "ok" } else { "MISSED" },
            format!("{} ({})", fmt_duration(r.took), fmt_duration(r.bound)),
            msg,
            r.left,
            r.next_run
        );
    }
}
