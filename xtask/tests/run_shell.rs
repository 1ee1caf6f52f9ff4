//! `cargo xtask run` end to end through a pseudo-terminal, as a user
//! would type it: the shell prompt comes, `ksh-lookup` agrees with the
//! host on the fixture's nested function, `ksh-probe` reruns one probe,
//! `poweroff` ends the VM, the harness exits 0, no QEMU is left and the
//! terminal's settings are back. Boots the x86_64 minimal kernel (built by
//! the earlier steps of .ci/run; built here otherwise).

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

/// QEMU processes of a shell session of this checkout still alive.
fn shell_qemus() -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with("qemu-system") && cmd.contains("x86_64-minimal-shell/") {
                v.push(cmd);
            }
        }
    }
    v
}

#[test]
#[ignore = "boots a kernel in QEMU (minutes on a cold cache); .ci/run runs it"]
fn shell_session_through_a_pty() {
    let (master, slave) = openpty();
    let before = termios(&slave);
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run", "--arch", "x86_64", "--config", "minimal"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .expect("starting xtask run");
    let started = Instant::now();
    let mut out = Vec::new();
    let transcript = |out: &[u8]| String::from_utf8_lossy(out).into_owned();
    let stop = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    let prompt = "ksh-guest:/# ";
    if !read_until(
        &master,
        &mut out,
        0,
        prompt,
        started + Duration::from_secs(900),
    ) {
        stop(&mut child);
        panic!("no shell prompt within 900 s:\n{}", transcript(&out));
    }
    let to_prompt = started.elapsed();
    let step = |out: &mut Vec<u8>, line: &str, want: &str| {
        let from = out.len();
        type_line(&master, line);
        let ok = read_until(
            &master,
            out,
            from,
            want,
            Instant::now() + Duration::from_secs(120),
        );
        (ok, String::from_utf8_lossy(&out[from..]).into_owned())
    };
    let (ok, text) = step(
        &mut out,
        "ksh-lookup kallsyms_fixture_nested_outer",
        "  same",
    );
    assert!(ok, "ksh-lookup did not agree:\n{text}");
    assert!(
        text.contains("kernel  kallsyms_fixture_nested_outer+0x0/"),
        "{text}"
    );
    let (ok, text) = step(&mut out, "ksh-probe nested-symbols", "ok 2 inner-start");
    assert!(ok, "ksh-probe nested-symbols:\n{text}");
    let from = out.len();
    type_line(&master, "poweroff");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            stop(&mut child);
            panic!(
                "xtask run did not exit 60 s after poweroff:\n{}",
                transcript(&out[from..])
            );
        }
        // Keep draining the pty so nothing blocks on a full buffer.
        let end = out.len();
        read_until(
            &master,
            &mut out,
            end,
            "\u{0}",
            Instant::now() + Duration::from_millis(200),
        );
    };
    assert!(
        status.success(),
        "xtask run exited {status}:\n{}",
        transcript(&out)
    );
    assert!(
        shell_qemus().is_empty(),
        "QEMU outlived xtask run: {:?}",
        shell_qemus()
    );
    let after = termios(&slave);
    assert_eq!(
        (after.c_lflag, after.c_iflag, after.c_oflag),
        (before.c_lflag, before.c_iflag, before.c_oflag),
        "terminal settings not restored"
    );
    eprintln!("shell prompt after {:.1} s", to_prompt.as_secs_f64());
}
