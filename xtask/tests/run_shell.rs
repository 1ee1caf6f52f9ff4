//! `cargo xtask run` end to end through a pseudo-terminal, as a user
//! would type it: the shell prompt comes, `ksh-lookup` agrees with the
//! host on the fixture's nested function, `ksh-probe` reruns one probe,
//! `poweroff` ends the VM, the harness exits 0, no QEMU is left and the
//! terminal's settings are back. Then every other way a guest can stop
//! (the `-f` forms, `halt`, `reboot`, SysRq, a panic) on both
//! architectures, and a QEMU frozen at start and mid-session: each must
//! end the session within a few seconds with the right status and message.
//! Boots the minimal kernels (built by the earlier steps of .ci/run; built
//! here otherwise).

use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A pty pair: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers to ints and a valid winsize.
    let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds we own.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn termios(fd: &OwnedFd) -> libc::termios {
    // SAFETY: tcgetattr into a zeroed termios.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
        t
    }
}

/// Reads the master until `want` appears in the output since `from`, or
/// the deadline passes; returns whether it appeared.
fn read_until(
    master: &OwnedFd,
    out: &mut Vec<u8>,
    from: usize,
    want: &str,
    deadline: Instant,
) -> bool {
    loop {
        if String::from_utf8_lossy(&out[from..]).contains(want) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 500) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 8192];
        // SAFETY: reading into a buffer of that size.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return String::from_utf8_lossy(&out[from..]).contains(want);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

fn type_line(master: &OwnedFd, line: &str) {
    let mut f = std::fs::File::from(master.try_clone().unwrap());
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The tests of this file boot one cell's shell each and look for its QEMU
/// among the host's processes: one at a time.
static ONE_SESSION_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// QEMU processes (pid, command line) of a shell session of `arch`'s
/// minimal cell started by the `cargo xtask run` process `owner` (its run
/// dir is `<secs>-<owner>`) still alive (zombies excluded).
fn shell_qemus(arch: &str, owner: u32) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with("qemu-system")
                && cmd.contains(&format!("{arch}-minimal-shell/"))
                && cmd.contains(&format!("-{owner}/"))
            {
                v.push((pid, cmd));
            }
        }
    }
    v
}

/// One `cargo xtask run` on a pty.
struct Session {
    master: OwnedFd,
    slave: OwnedFd,
    before: libc::termios,
    child: std::process::Child,
    out: Vec<u8>,
    arch: &'static str,
}

/// How a session ended.
struct Ended {
    status: std::process::ExitStatus,
    /// From the last typed line (or the fault) to the harness's exit.
    took: Duration,
    /// The harness's closing line (`ksh: ARCH/minimal: ...; exit status N; ...`).
    closing: String,
    transcript: String,
}

impl Session {
    fn start(arch: &'static str) -> Session {
        let (master, slave) = openpty();
        let before = termios(&slave);
        let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["run", "--arch", arch, "--config", "minimal"])
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()))
            .spawn()
            .expect("starting xtask run");
        Session {
            master,
            slave,
            before,
            child,
            out: Vec::new(),
            arch,
        }
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the shell prompt; the time it took.
    fn prompt(&mut self) -> Duration {
        let started = Instant::now();
        if !read_until(
            &self.master,
            &mut self.out,
            0,
            PROMPT,
            started + Duration::from_secs(900),
        ) {
            self.kill();
            panic!(
                "{}: no shell prompt within 900 s:\n{}",
                self.arch,
                self.transcript()
            );
        }
        started.elapsed()
    }

    /// Types `line` and reads until `want` appears (120 s at most).
    fn step(&mut self, line: &str, want: &str) -> (bool, String) {
        let from = self.out.len();
        type_line(&self.master, line);
        let ok = read_until(
            &self.master,
            &mut self.out,
            from,
            want,
            Instant::now() + Duration::from_secs(120),
        );
        (ok, String::from_utf8_lossy(&self.out[from..]).into_owned())
    }

    /// Reads what the pty has for `for_`.
    fn drain(&mut self, for_: Duration) {
        let end = self.out.len();
        read_until(
            &self.master,
            &mut self.out,
            end,
            "\u{0}",
            Instant::now() + for_,
        );
    }

    /// Waits (at most `limit`) for the harness to exit; checks that no
    /// QEMU is left and the terminal's settings are back.
    fn wait_exit(&mut self, since: Instant, limit: Duration, what: &str) -> Ended {
        let from = self.out.len();
        let deadline = since + limit;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "{}: xtask run did not exit {} s after {what}:\n{}",
                    self.arch,
                    limit.as_secs(),
                    String::from_utf8_lossy(&self.out[from..])
                );
            }
            // Keep draining the pty so nothing blocks on a full buffer.
            self.drain(Duration::from_millis(100));
        };
        let took = since.elapsed();
        self.drain(Duration::from_millis(300));
        let transcript = self.transcript();
        let owner = self.child.id();
        assert!(
            shell_qemus(self.arch, owner).is_empty(),
            "{}: QEMU outlived xtask run after {what}: {:?}",
            self.arch,
            shell_qemus(self.arch, owner)
        );
        let after = termios(&self.slave);
        assert_eq!(
            (after.c_lflag, after.c_iflag, after.c_oflag),
            (
                self.before.c_lflag,
                self.before.c_iflag,
                self.before.c_oflag
            ),
            "{}: terminal settings not restored after {what}",
            self.arch
        );
        let closing = transcript
            .lines()
            .rev()
            .find(|l| l.contains("exit status"))
            .unwrap_or("(no closing line)")
            .trim()
            .to_string();
        Ended {
            status,
            took,
            closing,
            transcript,
        }
    }
}

const PROMPT: &str = "ksh-guest:/# ";

#[test]
#[ignore = "boots a kernel in QEMU (minutes on a cold cache); .ci/run runs it"]
fn shell_session_through_a_pty() {
    let _one = ONE_SESSION_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut s = Session::start("x86_64");
    let to_prompt = s.prompt();
    let (ok, text) = s.step("ksh-lookup kallsyms_fixture_nested_outer", "  same");
    assert!(ok, "ksh-lookup did not agree:\n{text}");
    assert!(
        text.contains("kernel  kallsyms_fixture_nested_outer+0x0/"),
        "{text}"
    );
    let (ok, text) = s.step("ksh-probe nested-symbols", "ok 2 inner-start");
    assert!(ok, "ksh-probe nested-symbols:\n{text}");
    type_line(&s.master, "poweroff");
    let end = s.wait_exit(Instant::now(), Duration::from_secs(60), "poweroff");
    assert!(
        end.status.success(),
        "xtask run exited {}:\n{}",
        end.status,
        end.transcript
    );
    assert!(
        end.closing.contains("the guest powered off"),
        "{}",
        end.closing
    );
    eprintln!("shell prompt after {:.1} s", to_prompt.as_secs_f64());
}

/// Each way a guest can stop, typed at the prompt: the command, the
/// status `cargo xtask run` must exit with, and what its closing line
/// must say (per arch where the arches differ: x86_64's microvm has no
/// power-off device, so a forced power-off halts).
fn stops(arch: &str) -> Vec<(&'static str, i32, &'static str)> {
    let forced_power_off = if arch == "x86_64" {
        "the guest halted"
    } else {
        "the guest powered off"
    };
    vec![
        ("poweroff", 0, "the guest powered off"),
        ("poweroff -f", 0, forced_power_off),
        ("halt", 0, "the guest powered off"),
        ("halt -f", 0, "the guest halted"),
        ("reboot", 0, "the guest powered off"),
        ("reboot -f", 0, "the guest restarted"),
        ("echo o > /proc/sysrq-trigger", 0, "the guest powered off"),
        ("echo b > /proc/sysrq-trigger", 0, "the guest restarted"),
        ("echo c > /proc/sysrq-trigger", 1, "sysrq triggered crash"),
    ]
}

/// How long a stop may take, from the typed command to the harness's
/// exit: the kernel's shutdown, `FINAL_LINE_TO_EXIT` (3 s) where QEMU does
/// not exit by itself, stopping QEMU, and slack for a loaded host.
const STOP_LIMIT: Duration = Duration::from_secs(20);

fn every_guest_stop_ends_the_session(arch: &'static str) {
    let _one = ONE_SESSION_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut table = Vec::new();
    for (cmd, code, says) in stops(arch) {
        let mut s = Session::start(arch);
        s.prompt();
        type_line(&s.master, cmd);
        let end = s.wait_exit(Instant::now(), STOP_LIMIT, cmd);
        assert_eq!(
            end.status.code(),
            Some(code),
            "{arch}: `{cmd}`: exit {}:\n{}",
            end.status,
            end.transcript
        );
        assert!(
            end.transcript.contains(says),
            "{arch}: `{cmd}`: no '{says}' in:\n{}",
            end.transcript
        );
        table.push(format!(
            "{arch:7} {cmd:30} {:5.1} s  exit {code}  {}",
            end.took.as_secs_f64(),
            end.closing
        ));
    }
    eprintln!("{}", table.join("\n"));
}

#[test]
#[ignore = "boots kernels in QEMU (minutes on a cold cache); .ci/run runs it"]
fn every_guest_stop_ends_the_session_x86_64() {
    every_guest_stop_ends_the_session("x86_64");
}

#[test]
#[ignore = "boots kernels in QEMU (minutes on a cold cache); .ci/run runs it"]
fn every_guest_stop_ends_the_session_arm64() {
    every_guest_stop_ends_the_session("arm64");
}

/// QEMU frozen (SIGSTOP) right after its start, and at the shell prompt:
/// the session must end within the QMP limit (10 s, `QmpLimits`) + 5 s,
/// exit 1 naming the QMP step, leave no QEMU and restore the terminal.
#[test]
#[ignore = "boots a kernel in QEMU (minutes on a cold cache); .ci/run runs it"]
fn a_frozen_qemu_ends_the_session() {
    let _one = ONE_SESSION_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let limit = Duration::from_secs(10 + 1 + 5);
    let mut rows = Vec::new();
    for moment in ["at start", "at the prompt"] {
        let mut s = Session::start("x86_64");
        if moment == "at the prompt" {
            s.prompt();
        }
        let pid = loop {
            if let Some((pid, _)) = shell_qemus("x86_64", s.child.id()).first() {
                break *pid;
            }
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!(
                    "xtask run exited ({st}) before QEMU started:\n{}",
                    s.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        // SAFETY: plain syscall on the session's QEMU.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let frozen = Instant::now();
        let end = s.wait_exit(frozen, limit, &format!("SIGSTOP {moment}"));
        assert_eq!(end.status.code(), Some(1), "{moment}:\n{}", end.transcript);
        assert!(
            end.closing.contains("QMP") && end.closing.contains("limit"),
            "{moment}: {}",
            end.closing
        );
        rows.push(format!(
            "x86_64 frozen {moment:14} {:5.1} s  {}",
            end.took.as_secs_f64(),
            end.closing
        ));
    }
    eprintln!("{}", rows.join("\n"));
}
