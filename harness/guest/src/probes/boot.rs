//! `boot`: the kernel booted, ran our /init, and the filesystems the other
//! probes rely on are mounted.

use std::io::Write;

use crate::ktap::CaseWriter;
use crate::sys::MOUNTS;

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    // We run as a child of /init; PID 1 must be our parent and be /init.
    // SAFETY: getppid cannot fail.
    let ppid = unsafe { libc::getppid() };
    let cmdline = std::fs::read("/proc/1/cmdline").unwrap_or_default();
    let init =
        String::from_utf8_lossy(cmdline.split(|&b| b == 0).next().unwrap_or_default()).into_owned();
    let bad = if ppid == 1 && init == "/init" {
        Vec::new()
    } else {
        vec![format!(
            "want parent pid 1 running /init, got parent pid {ppid}, PID 1 runs '{init}'"
        )]
    };
    out.counted("init-ran", 1, bad.len(), bad, "");

    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let missing: Vec<String> = MOUNTS
        .iter()
        .filter(|(_, target, fstype)| {
            !mounts.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 2 && f[1] == *target && f[2] == *fstype
            })
        })
        .map(|(_, target, fstype)| format!("{fstype} on {target}"))
        .collect();
    let diag = if missing.is_empty() {
        Vec::new()
    } else {
        vec![format!("want mounted, not mounted: {}", missing.join(", "))]
    };
    out.counted(
        "filesystems-mounted",
        MOUNTS.len(),
        missing.len(),
        diag,
        "the guest mounts nothing",
    );
}
