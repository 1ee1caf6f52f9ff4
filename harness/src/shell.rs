//! `cargo xtask run`: the exact kernel, probe module and expectations of a
//! cell, booted with an interactive shell on the user's terminal instead
//! of the probes (busybox from Debian, see [`crate::payload::busybox`]). In the
//! guest, `ksh-probe NAME` reruns one probe and `ksh-lookup ADDR|NAME`
//! puts the kernel's answer next to the host's ground truth. Every way the
//! guest stops ends the session (`exit`, `poweroff`, `halt`, `reboot`, their
//! `-f` forms, SysRq, a panic: see [`crate::vm::interactive`]); Ctrl-a x
//! quits QEMU.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::layout;
use crate::payload::initramfs::GuestFile;
use crate::testrun::{self, Cell};
use crate::vm::accel::{self, AccelChoice};
use crate::vm::qemu::{self, Console, Timeouts, VmSpec};

/// Knobs of `cargo xtask run`.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    pub accel: AccelChoice,
    pub jobs: usize,
    /// QEMU's gdbstub on this port (the guest waits for gdb).
    pub gdb_port: Option<u16>,
    /// Extra kernel command-line words.
    pub guest_params: Vec<String>,
}

/// The shell's initramfs, in the build dir beside the test run's.
pub const SHELL_INITRAMFS: &str = "ksh-initramfs-shell.cpio";

/// The guest commands: shell scripts that call `/init`'s tool modes.
fn tool_scripts() -> Vec<GuestFile> {
    let script = |path: &str, body: &str| GuestFile {
        path: path.to_string(),
        mode: 0o755,
        data: format!("#!/bin/sh\n{body}\n").into_bytes(),
    };
    vec![
        script(
            ksh_proto::SHELL_PROBE_CMD,
            "# Reruns one probe of the test run (KTAP on stdout); alone, lists them.\n\
             [ $# -eq 0 ] && exec /init --list-probes\nexec /init --probe \"$1\"",
        ),
        script(
            ksh_proto::SHELL_LOOKUP_CMD,
            "# What the kernel and the host's ground truth say about addresses or names.\n\
             exec /init --lookup \"$@\"",
        ),
    ]
}

/// The host terminal's size (columns, rows), if stdout is a terminal.
fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ into a zeroed winsize.
    let ws = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Builds (if needed) and boots `cell` with a shell on this terminal;
/// returns QEMU's exit code once the VM is gone.
pub fn run(cell: &Cell, opts: &ShellOptions) -> Result<i32> {
    let built = testrun::build_kernel(cell, opts.jobs)?;
    let busybox = crate::payload::busybox::ensure(cell.id.arch)?;
    let mut extra = vec![GuestFile {
        path: ksh_proto::SHELL_BUSYBOX.to_string(),
        mode: 0o755,
        data: std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?,
    }];
    extra.extend(tool_scripts());
    let (initrd, info) = testrun::prepare_guest(cell, &built, &extra, SHELL_INITRAMFS)?;
    let memory_mib = qemu::memory_mib(cell.id.arch, info.symbols(), &initrd);
    // The same lock as the test run of this cell: the two take turns on
    // the VM (a shell session open beside a test run would push the test's
    // TCG guest past its probes' timeouts on a small host).
    let _run_lock = layout::lock(&layout::runs_lock(&cell.runs_dir()))?;
    let runs = cell.id.shell_runs_dir(&cell.source.key);
    let run_dir = layout::new_run_dir(&runs)?;
    let mut guest_params = vec![ksh_proto::SHELL_PARAM.to_string()];
    if let Some((c, r)) = terminal_size() {
        guest_params.push(format!("{}={c}", ksh_proto::SHELL_COLS_PARAM));
        guest_params.push(format!("{}={r}", ksh_proto::SHELL_ROWS_PARAM));
    }
    guest_params.extend(opts.guest_params.iter().cloned());
    let unlimited = Duration::from_secs(24 * 3600);
    let mut spec = VmSpec {
        arch: cell.id.arch,
        accel: accel::for_interactive(opts.accel, cell.id.arch)?,
        kernel: built.image.clone(),
        initrd,
        cpus: testrun::cpus_for(&built),
        memory_mib,
        run_dir: run_dir.clone(),
        qmp_socket: qemu::qmp_socket_path(&format!("{}-shell", cell.name())),
        qmp: crate::vm::qmp::QmpLimits::default(),
        timeouts: Timeouts {
            first_output: unlimited,
            silence: unlimited,
            overall: unlimited,
        },
        guest_params,
        console: Console::Interactive,
        gdb_port: None,
        instruction_clock: false,
    };
    if let Some(port) = opts.gdb_port {
        testrun::debug_session(&mut spec, &built, port);
        spec.console = Console::Interactive;
    }
    eprintln!(
        "ksh: {}: booting {} with a shell on {} (Ctrl-a x quits QEMU, Ctrl-a c its monitor); console log {}",
        cell.name(),
        built.image.display(),
        spec.accel.name(),
        run_dir.join(qemu::CONSOLE_LOG).display()
    );
    let end = crate::vm::interactive::run(&spec)?;
    let code = end.exit_code();
    eprintln!(
        "ksh: {}: {}; exit status {code}; console log {}, QEMU command line {}",
        cell.name(),
        end.describe(),
        run_dir.join(qemu::CONSOLE_LOG).display(),
        run_dir.join(qemu::CMDLINE_FILE).display()
    );
    if let Some(excerpt) = end.excerpt() {
        eprintln!("--- console ---\n{excerpt}\n---");
    }
    Ok(code)
}
