//! Booting a kernel in QEMU and watching it until the guest is done.
//!
//! The command line is built from the arch profile ([`crate::arch`]) by a pure
//! function ([`command`]) so it can be unit-tested. The runner starts QEMU
//! with the console and the results port written to files, drives QMP (the
//! `qapi` crate) to learn why the VM stopped and to stop it on a timeout, and
//! never waits forever: boot, silence and overall limits all end in `quit`
//! and, failing that, SIGKILL.

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::arch::ArchProfile;

/// The accelerator QEMU runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Directory for this run's files (console, results, command line).
    pub run_dir: PathBuf,
    /// The QMP socket. Kept out of the run dir: a Unix socket path must be
    /// shorter than 108 bytes, which a deep checkout would exceed.
    pub qmp_socket: PathBuf,
    pub timeouts: Timeouts,
    /// Extra kernel command-line words for the guest's own use
    /// (`ksh.*` parameters that `/init` reads from /proc/cmdline).
    pub guest_params: Vec<String>,
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
    for p in &spec.guest_params {
        s.push(' ');
        s.push_str(p);
    }
    s
}

/// The kernel command line for `arch`.
pub fn kernel_cmdline(arch: &ArchProfile) -> String {
    // panic=-1: reboot at once on panic; with -no-reboot QEMU then exits,
    // so a panicking kernel cannot keep the run waiting.
    // rcupdate.rcu_expedited=1: boot waits for RCU grace periods (before
    // mark_rodata_ro(), in module loading); expedited ones saved ~0.35 s
    // of the x86_64 boot under TCG. Lookups do not depend on it.
    let mut s = format!(
        "console={} panic=-1 oops=panic rdinit=/init loglevel=6 rcupdate.rcu_expedited=1",
        arch.qemu.console
    );
    if !arch.qemu.cmdline_extra.is_empty() {
        s.push(' ');
        s.push_str(arch.qemu.cmdline_extra);
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
    .args(["-m", &q.memory_mib.to_string()])
    .arg("-kernel")
    .arg(&spec.kernel)
    .arg("-initrd")
    .arg(&spec.initrd)
    .args(["-append", &append_line(spec)])
    .args([
        "-chardev",
        &format!("file,id=console,path={}", rd.join(CONSOLE_LOG).display()),
    ])
    .args(["-serial", "chardev:console"])
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
    cmd
}

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl VmOutcome {
    /// Whether the result stream ended with the completion record.
    pub fn completed(&self) -> bool {
        self.results
            .lines()
            .any(|l| l.starts_with(ksh_proto::COMPLETION_RECORD))
    }

    /// One paragraph saying where to look.
    pub fn where_to_look(&self) -> String {
        format!(
            "console log: {}\nresults: {}\nqemu command: {}",
            self.console_log.display(),
            self.run_dir.join(RESULTS_FILE).display(),
            self.run_dir.join(CMDLINE_FILE).display()
        )
    }
}

/// QEMU processes alive right now, so Ctrl-C can take them down.
static LIVE_QEMUS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Work to undo on Ctrl-C after the VMs are gone (e.g. `git bisect reset`).
type Cleanup = Box<dyn Fn() + Send>;
static CLEANUPS: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

/// Registers `f` to run on Ctrl-C, after every QEMU has been killed.
pub fn on_interrupt(f: Cleanup) {
    CLEANUPS.lock().unwrap().push(f);
}

/// Installs a Ctrl-C handler that kills every live QEMU, runs the
/// registered cleanups and exits 130.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        kill_all_live();
        if let Ok(cleanups) = CLEANUPS.lock() {
            for f in cleanups.iter() {
                f();
            }
        }
        eprintln!("\nksh: interrupted; stopped all QEMU processes");
        std::process::exit(130);
    });
}

/// Kills every QEMU this process started and that is still running.
pub fn kill_all_live() {
    if let Ok(pids) = LIVE_QEMUS.lock() {
        for &pid in pids.iter() {
            // SAFETY: plain syscall on a pid we spawned.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

struct LiveGuard(u32);
impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut v) = LIVE_QEMUS.lock() {
            v.retain(|&p| p != self.0);
        }
    }
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Sends `quit` over QMP, then kills QEMU if it is still there after 3 s.
fn stop_vm(child: &mut Child, qmp: &mut Option<Qmp>) {
    if let Some(q) = qmp.as_mut() {
        let _ = q.execute(&qapi::qmp::quit {});
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

type Qmp = qapi::Qmp<qapi::Stream<std::io::BufReader<UnixStream>, UnixStream>>;

/// Connects to QEMU's QMP socket and negotiates capabilities.
fn connect_qmp(path: &Path, child: &mut Child) -> Option<Qmp> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if let Ok(stream) = UnixStream::connect(path) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let Ok(reader) = stream.try_clone() else {
                return None;
            };
            let mut qmp =
                qapi::Qmp::new(qapi::Stream::new(std::io::BufReader::new(reader), stream));
            if qmp.handshake().is_ok() {
                return Some(qmp);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
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
/// `spec.timeouts.overall`.
pub fn run(spec: &VmSpec) -> Result<VmOutcome> {
    let rd = &spec.run_dir;
    fs::create_dir_all(rd).with_context(|| format!("creating {}", rd.display()))?;
    for f in [CONSOLE_LOG, RESULTS_FILE, QEMU_STDERR] {
        let _ = fs::remove_file(rd.join(f));
    }
    let _ = fs::remove_file(&spec.qmp_socket);
    let mut cmd = command(spec);
    let cmdline = crate::kbuild::shell_line(&cmd);
    fs::write(rd.join(CMDLINE_FILE), format!("{cmdline}\n"))?;
    let stderr_file = fs::File::create(rd.join(QEMU_STDERR))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file);
    // SAFETY: prctl is async-signal-safe; it makes the kernel kill QEMU if
    // the harness dies, so no VM outlives it.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", spec.arch.qemu.binary))?;
    LIVE_QEMUS.lock().unwrap().push(child.id());
    let _guard = LiveGuard(child.id());
    let mut qmp = connect_qmp(&spec.qmp_socket, &mut child);

    let console_path = rd.join(CONSOLE_LOG);
    let results_path = rd.join(RESULTS_FILE);
    let mut last_sizes = (0u64, 0u64);
    let mut last_activity = Instant::now();
    let mut shutdown_reason: Option<String> = None;
    let mut completed_at: Option<Duration> = None;
    let mut timeout: Option<String> = None;
    let exit_status = loop {
        // Read the outputs before looking at the process, so a guest that
        // completes and powers off between two polls is seen completing.
        let exited = child.try_wait()?;
        if let Some(q) = qmp.as_mut() {
            if q.nop().is_err() {
                // QEMU is going away; try_wait sees it next round.
            }
            for ev in q.events() {
                if let qapi::qmp::Event::SHUTDOWN { data, .. } = ev {
                    shutdown_reason = Some(format!("{:?}", data.reason));
                }
            }
        }
        let sizes = (file_len(&console_path), file_len(&results_path));
        if sizes != last_sizes {
            last_sizes = sizes;
            last_activity = Instant::now();
            if completed_at.is_none() && sizes.1 > 0 {
                let text = fs::read_to_string(&results_path).unwrap_or_default();
                if text
                    .lines()
                    .any(|l| l.starts_with(ksh_proto::COMPLETION_RECORD))
                {
                    completed_at = Some(started.elapsed());
                }
            }
        }
        if let Some(st) = exited {
            break Some(st);
        }
        let elapsed = started.elapsed();
        if let Some(done) = completed_at {
            // The guest said it is done; give it a moment to power off.
            if elapsed > done + POWER_OFF_GRACE {
                stop_vm(&mut child, &mut qmp);
                break None;
            }
        } else if last_sizes.0 == 0 && elapsed > spec.timeouts.first_output {
            timeout = Some(format!(
                "no console output for {} s",
                spec.timeouts.first_output.as_secs()
            ));
        } else if last_activity.elapsed() > spec.timeouts.silence {
            timeout = Some(format!(
                "no output for {} s",
                spec.timeouts.silence.as_secs()
            ));
        } else if elapsed > spec.timeouts.overall {
            timeout = Some(format!(
                "run exceeded the overall limit of {} s",
                spec.timeouts.overall.as_secs()
            ));
        }
        if timeout.is_some() {
            stop_vm(&mut child, &mut qmp);
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    // Collect a SHUTDOWN event that arrived just before QEMU exited.
    if let Some(q) = qmp.as_mut() {
        let _ = q.nop();
        for ev in q.events() {
            if let qapi::qmp::Event::SHUTDOWN { data, .. } = ev {
                shutdown_reason = Some(format!("{:?}", data.reason));
            }
        }
    }
    let elapsed = started.elapsed();
    let console =
        String::from_utf8_lossy(&fs::read(&console_path).unwrap_or_default()).into_owned();
    let mut results = String::new();
    if let Ok(mut f) = fs::File::open(&results_path) {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        results = String::from_utf8_lossy(&bytes).into_owned();
    }
    let completed = results
        .lines()
        .any(|l| l.starts_with(ksh_proto::COMPLETION_RECORD));
    let exit = if let Some(excerpt) = panic_excerpt(&console) {
        Exit::Panic { excerpt }
    } else if let Some(what) = timeout {
        Exit::Timeout { what }
    } else if completed_at.is_some() && exit_status.is_none() {
        // Completed but did not power off by itself: stopped via QMP.
        Exit::Timeout {
            what: format!(
                "guest finished but did not power off within {} s",
                POWER_OFF_GRACE.as_secs()
            ),
        }
    } else {
        match shutdown_reason.as_deref() {
            Some("guest_shutdown") => Exit::PoweredOff,
            Some("guest_reset") => Exit::Reset,
            Some("guest_panic") => Exit::Panic {
                excerpt: "QEMU reported a guest panic".into(),
            },
            _ => {
                let status = exit_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "killed".into());
                let stderr = fs::read_to_string(rd.join(QEMU_STDERR)).unwrap_or_default();
                if completed && stderr.trim().is_empty() {
                    Exit::PoweredOff
                } else {
                    Exit::QemuFailed { status, stderr }
                }
            }
        }
    };
    Ok(VmOutcome {
        exit,
        accel: spec.accel,
        results,
        run_dir: rd.clone(),
        console_log: console_path,
        cmdline,
        console_spoke: !console.is_empty(),
        boot_to_results: completed_at,
        elapsed,
    })
}

/// How long a guest that wrote its completion record may take to power
/// off. Normally well under a second; on a loaded host an SMP guest's
/// shutdown (stopping the other vCPUs) was seen to take more than 5 s.
const POWER_OFF_GRACE: Duration = Duration::from_secs(15);

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
    use crate::arch::{ARM64, X86_64};

    fn spec(arch: &ArchProfile, accel: Accel) -> VmSpec<'_> {
        VmSpec {
            arch,
            accel,
            kernel: PathBuf::from("/b/Image"),
            initrd: PathBuf::from("/b/initrd.gz"),
            cpus: 1,
            run_dir: PathBuf::from("/r"),
            qmp_socket: PathBuf::from("/tmp/q.sock"),
            timeouts: Timeouts {
                first_output: Duration::from_secs(5),
                silence: Duration::from_secs(30),
                overall: Duration::from_secs(120),
            },
            guest_params: Vec::new(),
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
    fn x86_64_kvm_and_tcg_commands() {
        let a = args(&command(&spec(&X86_64, Accel::Kvm)));
        assert_eq!(value_after(&a, "-accel"), ["kvm"]);
        assert_eq!(value_after(&a, "-cpu"), ["host"]);
        let a = args(&command(&spec(&X86_64, Accel::Tcg)));
        assert_eq!(value_after(&a, "-accel"), ["tcg,thread=multi"]);
        assert_eq!(value_after(&a, "-cpu"), ["max"]);
        assert!(value_after(&a, "-append")[0].contains("console=ttyS0"));
        assert_eq!(value_after(&a, "-device")[0], "virtio-serial-pci,id=vser0");
        assert_eq!(value_after(&a, "-serial"), ["chardev:console"]);
    }

    #[test]
    fn panic_excerpt_finds_the_panic() {
        let log = "[0.1] a\n[0.2] b\n[0.3] Kernel panic - not syncing: VFS: Unable to mount root\n[0.4] c\n";
        let e = panic_excerpt(log).unwrap();
        assert!(e.contains("Unable to mount root") && e.contains("[0.1] a"));
        assert!(panic_excerpt("all fine\n").is_none());
    }
}
