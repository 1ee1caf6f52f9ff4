//! `kallsyms-selftest`: the kernel's own `CONFIG_KALLSYMS_SELFTEST`
//! (kernel/kallsyms_selftest.c) still passes on the patched kernel. It runs
//! in a kthread once the system is up and reports with plain `pr_info`
//! lines prefixed `kallsyms_selftest: `; this probe reads the kernel log
//! until `finish` or `abort` and fails on any line that reports a failure.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::ktap::{CaseWriter, Verdict};

const PREFIX: &str = "kallsyms_selftest: ";

/// The kernel log so far (klogctl READ_ALL).
fn kernel_log() -> String {
    let mut buf = vec![0u8; 1 << 20];
    // SAFETY: buf is valid for its length; 3 = SYSLOG_ACTION_READ_ALL.
    let n = unsafe { libc::klogctl(3, buf.as_mut_ptr().cast(), buf.len() as libc::c_int) };
    buf.truncate(n.max(0) as usize);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Lines the selftest prints when something is wrong.
fn is_failure(line: &str) -> bool {
    [
        "failed",
        "mismatch",
        "Never found",
        "NULL lookup",
        "!= stat",
        "?!",
        "abort",
    ]
    .iter()
    .any(|w| line.contains(w))
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    if out.skip_if_not_applicable("verdict") {
        return;
    }
    let limit = Duration::from_secs(
        u64::from(ksh_proto::probe("kallsyms-selftest").map_or(240, |p| p.timeout_secs)) - 5,
    );
    let started = Instant::now();
    let mut last_beat = Instant::now();
    loop {
        let log = kernel_log();
        let lines: Vec<&str> = log
            .lines()
            .filter_map(|l| l.find(PREFIX).map(|i| &l[i + PREFIX.len()..]))
            .collect();
        let done = lines
            .iter()
            .any(|l| l.trim() == "finish" || l.trim() == "abort");
        if done {
            let failures: Vec<String> = lines
                .iter()
                .filter(|l| is_failure(l))
                .map(|l| l.to_string())
                .collect();
            for l in lines
                .iter()
                .filter(|l| l.contains("ns") || l.contains("symbols"))
            {
                out.note(&format!("selftest: {}", l.trim()));
            }
            // Items: the selftest's own report lines, of which the
            // failure lines are the mismatches.
            out.checked_items(
                "verdict",
                lines.len(),
                "selftest failure lines",
                &failures,
                "",
            );
            return;
        }
        if started.elapsed() > limit {
            let seen = if lines.is_empty() {
                "nothing".to_string()
            } else {
                lines.join(" | ")
            };
            out.case(
                "verdict",
                Verdict::Fail(vec![format!(
                    "no finish/abort after {} s; it printed: {seen}",
                    limit.as_secs()
                )]),
            );
            return;
        }
        // Keep the console alive so the host's silence timeout does not fire
        // while the kthread works.
        if last_beat.elapsed() > Duration::from_secs(10) {
            let _ = std::fs::write("/dev/kmsg", "ksh: waiting for kallsyms_selftest\n");
            last_beat = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
