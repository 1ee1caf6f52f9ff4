//! The few system calls PID 1 needs: mounts, the results port, power-off.

use std::ffi::CString;
use std::fs;
use std::path::PathBuf;

/// (source, target, fstype) of every pseudo filesystem the probes use.
pub const MOUNTS: &[(&str, &str, &str)] = &[
    ("proc", "/proc", "proc"),
    ("sysfs", "/sys", "sysfs"),
    ("devtmpfs", "/dev", "devtmpfs"),
    ("debugfs", "/sys/kernel/debug", "debugfs"),
    ("tracefs", "/sys/kernel/tracing", "tracefs"),
];

/// Mounts [`MOUNTS`]; returns one message per failure.
pub fn mount_pseudo_filesystems() -> Vec<String> {
    let mut errors = Vec::new();
    for &(src, target, fstype) in MOUNTS {
        let _ = fs::create_dir_all(target);
        let (s, t, f) = (
            CString::new(src).unwrap(),
            CString::new(target).unwrap(),
            CString::new(fstype).unwrap(),
        );
        // SAFETY: valid NUL-terminated strings; no data argument.
        let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // devtmpfs may already be mounted by the kernel (DEVTMPFS_MOUNT).
            if err.raw_os_error() != Some(libc::EBUSY) {
                errors.push(format!("mount {fstype} on {target}: {err}"));
            }
        }
    }
    errors
}

/// Finds the virtio-serial port called `name` through sysfs (no udev here,
/// so there is no /dev/virtio-ports/ symlink) and opens its device node.
pub fn open_results_port(name: &str) -> std::io::Result<fs::File> {
    let mut found: Option<PathBuf> = None;
    for e in fs::read_dir("/sys/class/virtio-ports")? {
        let e = e?;
        let port_name = fs::read_to_string(e.path().join("name")).unwrap_or_default();
        if port_name.trim() == name {
            found = Some(PathBuf::from("/dev").join(e.file_name()));
        }
    }
    let dev = found.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no virtio port named {name} in /sys/class/virtio-ports"),
        )
    })?;
    fs::OpenOptions::new().write(true).open(&dev)
}

/// The `isa-debug-exit` port that ends the run (the host's
/// [`ksh_proto::EXIT_PORT_PARAM`]), 0 for none: the machine powers off.
/// Set once at start; read by [`power_off`], also from a signal handler.
static EXIT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Reads [`ksh_proto::EXIT_PORT_PARAM`] from the kernel command line.
pub fn configure_end(cmdline: &str) {
    let port = ksh_proto::cmdline_value(cmdline, ksh_proto::EXIT_PORT_PARAM)
        .and_then(|v| u16::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    EXIT_PORT.store(port.into(), std::sync::atomic::Ordering::Relaxed);
}

/// Writes the exit value to QEMU's `isa-debug-exit` port, which ends QEMU
/// at once. Returns if the port cannot be reached (no such device, or the
/// kernel lacks ioperm(2)).
#[cfg(target_arch = "x86_64")]
fn debug_exit(port: u16) {
    // SAFETY: ioperm grants this process the one port; the `out` then
    // writes one byte to it, which only QEMU's device sees.
    unsafe {
        if libc::syscall(
            libc::SYS_ioperm,
            libc::c_ulong::from(port),
            1 as libc::c_ulong,
            1,
        ) == 0
        {
            std::arch::asm!(
                "out dx, al",
                in("dx") port,
                in("al") ksh_proto::DEBUG_EXIT_VALUE,
                options(nomem, nostack, preserves_flags)
            );
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn debug_exit(_port: u16) {}

/// Ends the machine: through the exit port where the host named one, else
/// power-off; a reset if neither ended it (QEMU runs with -no-reboot).
/// Async-signal-safe: an atomic load and system calls.
fn end_machine() {
    let port = EXIT_PORT.load(std::sync::atomic::Ordering::Relaxed) as u16;
    // SAFETY: plain syscalls; PID 1 is allowed to reboot.
    unsafe {
        libc::sync();
        if port != 0 {
            debug_exit(port);
        } else {
            libc::reboot(libc::RB_POWER_OFF);
        }
        libc::reboot(libc::RB_AUTOBOOT);
    }
}

/// Powers the machine off (or resets it, see [`end_machine`]); the host
/// tells the two apart.
pub fn power_off() -> ! {
    end_machine();
    // Both refused: nothing left but to wait for the host's timeout.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Loads a kernel module from `path` with `finit_module(2)` (no
/// parameters). `EEXIST` (already loaded) counts as success.
pub fn load_module(path: &str, params: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    let params = CString::new(params).map_err(|e| format!("module parameters: {e}"))?;
    // SAFETY: a valid fd and a NUL-terminated parameter string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            f.as_raw_fd(),
            params.as_ptr(),
            0 as libc::c_int,
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("finit_module({path}): {err}"));
        }
    }
    Ok(())
}

/// Sets the size of the console's tty (`/sys/class/tty/console/active`,
/// e.g. ttyS0), which a serial line cannot learn by itself.
pub fn set_console_size(cols: u16, rows: u16) {
    let active = fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let Some(name) = active.split_whitespace().last() else {
        return;
    };
    let Ok(tty) = fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/{name}"))
    else {
        return;
    };
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSWINSZ with a valid winsize on an open tty.
    unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// The load address of a module's `.text` (its sysfs section attribute).
pub fn module_text_address(module: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/sys/module/{module}/sections/.text")).ok()?;
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// Makes busybox's `poweroff`, `halt` and `reboot` work with this `/init`:
/// they signal PID 1 (SIGUSR2, SIGUSR1, SIGTERM) as they would busybox's
/// init, and PID 1 ignores signals it has no handler for.
pub fn power_off_on_init_signals() {
    extern "C" fn handler(_: libc::c_int) {
        end_machine();
    }
    for sig in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGTERM] {
        // SAFETY: installs a handler that only makes system calls.
        unsafe {
            libc::signal(
                sig,
                handler as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

/// The user and group of an unprivileged reader (`nobody`, no capabilities).
pub const NOBODY: u32 = 65534;

/// Reads `path` as user and group [`NOBODY`]: a child process drops to them
/// (clearing the capabilities root had), opens and reads the file, and
/// sends the bytes back through a pipe. Files such as `/proc/kallsyms`
/// decide at open() what the opener may see, so the open must happen in
/// the child. Must be called from a single-threaded process (a probe).
/// Why [`read_unprivileged`] got no bytes.
#[derive(Debug)]
pub enum UnprivilegedReadError {
    /// The harness's side failed (pipe, fork, dropping privileges): says
    /// nothing about the kernel under test.
    Setup(String),
    /// The kernel refused the unprivileged reader (open or read failed):
    /// what the file allows is what the probes check.
    Refused(String),
}

pub fn read_unprivileged(path: &str) -> Result<Vec<u8>, UnprivilegedReadError> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use UnprivilegedReadError::{Refused, Setup};
    let cpath = CString::new(path).map_err(|e| Setup(format!("{path}: {e}")))?;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(Setup(format!("pipe: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: the probe process has one thread; the child calls only
    // async-signal-safe functions and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Setup(format!("fork: {}", std::io::Error::last_os_error())));
    }
    if pid == 0 {
        // SAFETY: plain system calls on owned descriptors and a C string.
        unsafe {
            libc::close(fds[0]);
            let w = fds[1];
            // Tells the parent which step failed: the last byte it reads.
            unsafe fn fail_at(w: libc::c_int, step: u8) -> ! {
                let _ = libc::write(w, [0xffu8, step].as_ptr().cast(), 2);
                libc::_exit(1)
            }
            let fail = |step: u8| fail_at(w, step);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(NOBODY, NOBODY, NOBODY) != 0
                || libc::setresuid(NOBODY, NOBODY, NOBODY) != 0
            {
                fail(1);
            }
            let fd = libc::open(cpath.as_ptr(), libc::O_RDONLY);
            if fd < 0 {
                fail(2);
            }
            let mut buf = [0u8; 65536];
            loop {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if n < 0 {
                    fail(3);
                }
                if n == 0 {
                    libc::_exit(0);
                }
                let mut off = 0usize;
                while off < n as usize {
                    let m = libc::write(w, buf[off..].as_ptr().cast(), n as usize - off);
                    if m <= 0 {
                        libc::_exit(1);
                    }
                    off += m as usize;
                }
            }
        }
    }
    // SAFETY: fds[0] is ours; fds[1] belongs to the child now.
    let mut reader = unsafe {
        libc::close(fds[1]);
        fs::File::from_raw_fd(fds[0])
    };
    let mut out = Vec::new();
    let read = reader.read_to_end(&mut out);
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    read.map_err(|e| Setup(format!("reading {path} from the child: {e}")))?;
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !exited_ok {
        let (step, kernel) = match out.last() {
            Some(1) => ("dropping to uid/gid 65534", false),
            Some(2) => ("open", true),
            Some(3) => ("read", true),
            _ => ("writing to the pipe", false),
        };
        let why =
            format!("reading {path} as uid {NOBODY} failed at {step} (wait status {status:#x})");
        return Err(if kernel { Refused(why) } else { Setup(why) });
    }
    Ok(out)
}

/// The guest's arch as the registry names it.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        a => a,
    }
}
