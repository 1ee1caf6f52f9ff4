//! QEMU on the user's terminal (`cargo xtask run`): the console is the
//! user's, so no silence or overall limit applies, but the session still
//! ends whenever the guest stops, however it stops.
//!
//! A guest can stop without QEMU exiting: `poweroff -f` on x86_64's
//! `microvm` (no power-off device: the kernel halts instead), `halt -f`,
//! a reset that does not reach QEMU. So the runner reads the console log
//! (QEMU's `logfile=` copy of what the user sees) for the kernel's last
//! line ([`FinalLine`]), gives QEMU [`FINAL_LINE_TO_EXIT`] to exit by
//! itself, then stops it; and it watches QMP, so a frozen QEMU is killed
//! too ([`crate::vm::qmp`]). Terminal settings are restored however it ends.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::vm::qemu::{self, VmSpec, CONSOLE_LOG};

/// The kernel's last console line on each way a machine stops, as
/// `kernel/reboot.c` and `kernel/panic.c` print them (after the printk
/// timestamp, which every harness config turns on: a user who types the
/// text at the shell does not end the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalLine {
    /// `kernel_power_off()`.
    PowerDown,
    /// `kernel_halt()`, also a power-off on a machine without a power-off
    /// device ("Power off not available: System halted instead").
    Halted,
    /// `kernel_restart()`, or SysRq `b` (an emergency restart prints
    /// only SysRq's own line).
    Restarting,
    /// `panic()`.
    Panic,
}

impl FinalLine {
    const ALL: [(FinalLine, &'static str); 5] = [
        (FinalLine::PowerDown, "reboot: Power down"),
        (FinalLine::Halted, "System halted"),
        (FinalLine::Restarting, "reboot: Restarting system"),
        (FinalLine::Restarting, "sysrq: Resetting"),
        (FinalLine::Panic, "Kernel panic - not syncing"),
    ];

    /// The final line `line` holds, if any: `[ seconds] TEXT...`, where
    /// the kernel's line may follow the shell's output on the same console
    /// line (the prompt, a terminal query) but must carry its timestamp.
    pub fn of(line: &str) -> Option<FinalLine> {
        static STAMPED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let stamped = STAMPED
            .get_or_init(|| regex::Regex::new(r"\[\s*\d+\.\d+\]\s?(.*)").expect("valid regex"));
        let text = stamped.captures(line)?.get(1)?.as_str();
        FinalLine::ALL
            .iter()
            .find(|(_, t)| text.contains(t))
            .map(|(f, _)| *f)
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEnd {
    /// The guest powered the machine off (the kernel's line, the exit
    /// port on x86_64, PSCI on arm64).
    PoweredOff,
    /// The kernel halted (`halt -f`, or `poweroff -f` on a machine that
    /// cannot power off); the harness stopped QEMU.
    Halted,
    /// The guest restarted the machine (`reboot -f`, SysRq `b`); QEMU
    /// runs with `-no-reboot`, so that ends it.
    Restarted,
    /// The kernel panicked (SysRq `c`, an oops with `oops=panic`).
    Panic { excerpt: String },
    /// QEMU exited without a final line from the kernel (Ctrl-a x, or a
    /// QEMU error).
    QemuExited { status: String, code: i32 },
    /// QEMU stopped answering QMP (frozen or wedged); the harness killed it.
    QemuFrozen { what: String },
}

impl ShellEnd {
    /// The exit status of `cargo xtask run`: 0 for a stop the guest chose,
    /// non-zero for a panic or a QEMU fault.
    pub fn exit_code(&self) -> i32 {
        match self {
            ShellEnd::PoweredOff | ShellEnd::Halted | ShellEnd::Restarted => 0,
            ShellEnd::Panic { .. } | ShellEnd::QemuFrozen { .. } => 1,
            ShellEnd::QemuExited { code, .. } => *code,
        }
    }

    /// The console lines around a panic, to show after [`ShellEnd::describe`].
    pub fn excerpt(&self) -> Option<&str> {
        match self {
            ShellEnd::Panic { excerpt } => Some(excerpt),
            _ => None,
        }
    }

    /// One line saying how the guest stopped.
    pub fn describe(&self) -> String {
        match self {
            ShellEnd::PoweredOff => "the guest powered off".into(),
            ShellEnd::Halted => "the guest halted (\"System halted\"); QEMU stopped".into(),
            ShellEnd::Restarted => "the guest restarted the machine; QEMU stopped".into(),
            ShellEnd::Panic { .. } => "the kernel panicked (console excerpt below)".into(),
            ShellEnd::QemuExited { status, .. } => {
                format!("QEMU exited ({status}) without a final line from the kernel")
            }
            ShellEnd::QemuFrozen { what } => what.clone(),
        }
    }
}

/// How long QEMU may take to exit by itself once the kernel printed its
/// final line (a power-off or reset reaches QEMU within milliseconds;
/// a halt never does).
pub const FINAL_LINE_TO_EXIT: Duration = Duration::from_secs(3);

/// Console bytes read per poll at most (a guest printing fast must not
/// stall the watch).
const READ_CHUNK: u64 = 1 << 20;

/// New console text since `*offset`, as lines; a partial last line is
/// kept for the next call in `partial`.
fn new_lines(path: &Path, offset: &mut u64, partial: &mut String) -> Vec<String> {
    let Ok(mut f) = fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(READ_CHUNK).read_to_end(&mut buf);
    *offset += buf.len() as u64;
    partial.push_str(&String::from_utf8_lossy(&buf));
    let mut lines: Vec<String> = partial.split('\n').map(str::to_string).collect();
    *partial = lines.pop().unwrap_or_default();
    lines
}

/// Runs `spec` (console on the terminal) until the guest stops or QEMU
/// exits; says how. QEMU dies with the harness; the terminal settings
/// come back however it ends.
pub fn run(spec: &VmSpec) -> Result<ShellEnd> {
    let (mut cmd, _) = qemu::recorded_command(spec)?;
    let _terminal = TerminalGuard::save();
    let (mut child, _live, mut qmp) = qemu::spawn(spec, &mut cmd)?;
    let console = spec.run_dir.join(CONSOLE_LOG);
    let (mut offset, mut partial) = (0u64, String::new());
    let mut last_line: Option<(FinalLine, Instant)> = None;
    let end = loop {
        let exited = child.try_wait()?;
        for line in new_lines(&console, &mut offset, &mut partial) {
            // The first final line decides (a panic's own reboot line
            // follows it).
            if last_line.is_none() {
                last_line = FinalLine::of(&line).map(|f| (f, Instant::now()));
            }
        }
        if let Some(status) = exited {
            break Ended::Exited(status);
        }
        if let Err(fault) = qmp.poll() {
            let how = qemu::kill_vm(&mut child);
            break Ended::Frozen(format!("{fault}; {how}"));
        }
        if let Some((_, at)) = last_line {
            if at.elapsed() > FINAL_LINE_TO_EXIT {
                qemu::stop_vm(&mut child, &mut qmp);
                break Ended::Stopped;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    qmp.drain();
    let _ = fs::remove_file(&spec.qmp_socket);
    let text = String::from_utf8_lossy(&fs::read(&console).unwrap_or_default()).into_owned();
    Ok(classify(
        spec,
        end,
        last_line.map(|(f, _)| f),
        qmp.shutdown_reason(),
        &text,
    ))
}

/// What ended the watch.
enum Ended {
    Exited(ExitStatus),
    /// The harness stopped QEMU after the kernel's final line.
    Stopped,
    Frozen(String),
}

fn classify(
    spec: &VmSpec,
    end: Ended,
    last_line: Option<FinalLine>,
    shutdown_reason: Option<&str>,
    console: &str,
) -> ShellEnd {
    if let Ended::Frozen(what) = end {
        return ShellEnd::QemuFrozen { what };
    }
    if last_line == Some(FinalLine::Panic) || shutdown_reason == Some("guest_panic") {
        return ShellEnd::Panic {
            excerpt: qemu::panic_excerpt(console)
                .unwrap_or_else(|| "QEMU reported a guest panic".into()),
        };
    }
    match last_line {
        Some(FinalLine::PowerDown) => return ShellEnd::PoweredOff,
        Some(FinalLine::Halted) => return ShellEnd::Halted,
        Some(FinalLine::Restarting) => return ShellEnd::Restarted,
        _ => {}
    }
    let Ended::Exited(status) = end else {
        unreachable!("the watch stops QEMU only after a final line")
    };
    if qemu::ended_through_exit_port(spec.arch, &status) {
        return ShellEnd::PoweredOff;
    }
    match shutdown_reason {
        Some("guest_shutdown") => ShellEnd::PoweredOff,
        Some("guest_reset") => ShellEnd::Restarted,
        _ => ShellEnd::QemuExited {
            status: status.to_string(),
            code: status.code().unwrap_or(1),
        },
    }
}

/// The terminal settings of stdin, put back when dropped (and by the Ctrl-C
/// handler): QEMU sets the terminal raw for an interactive console and
/// cannot restore it when it is killed.
struct TerminalGuard {
    saved: Option<libc::termios>,
    _cleanup: Option<crate::process::CleanupGuard>,
}

impl TerminalGuard {
    fn save() -> TerminalGuard {
        // SAFETY: tcgetattr on fd 0 into a zeroed termios.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(0, &mut t) == 0).then_some(t)
        };
        let _cleanup = saved.map(|t| {
            crate::process::cleanup_while(Box::new(move || {
                // SAFETY: restores settings read from the same fd.
                unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
            }))
        });
        TerminalGuard { saved, _cleanup }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restores settings read from the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_lines_need_the_kernel_timestamp() {
        use FinalLine::*;
        let cases = [
            ("[    3.101] reboot: Power down", Some(PowerDown)),
            (
                "[    3.101] reboot: Power off not available: System halted instead",
                Some(Halted),
            ),
            ("\r[   12.000001] reboot: System halted", Some(Halted)),
            ("[    5.2] sysrq: Resetting", Some(Restarting)),
            // After the shell's prompt and a terminal query on the same line.
            (
                "ksh-guest:/# \u{1b}[6n[    1.341288] reboot: Power down",
                Some(PowerDown),
            ),
            (
                "[    5.2] Kernel panic - not syncing: sysrq triggered crash",
                Some(Panic),
            ),
            // Typed at the shell, or echoed by it.
            ("ksh-guest:/# echo reboot: Power down", None),
            ("reboot: Power down", None),
            ("[x] reboot: Power down", None),
        ];
        for (line, want) in cases {
            assert_eq!(FinalLine::of(line), want, "{line:?}");
        }
    }

    #[test]
    fn partial_lines_wait_for_their_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c");
        fs::write(&p, "[ 1.0] a\n[ 2.0] reboot: Po").unwrap();
        let (mut off, mut part) = (0, String::new());
        assert_eq!(new_lines(&p, &mut off, &mut part), vec!["[ 1.0] a"]);
        fs::write(&p, "[ 1.0] a\n[ 2.0] reboot: Power down\n").unwrap();
        let lines = new_lines(&p, &mut off, &mut part);
        assert_eq!(lines, vec!["[ 2.0] reboot: Power down"]);
        assert_eq!(FinalLine::of(&lines[0]), Some(FinalLine::PowerDown));
    }
}
