//! `boot/no-kernel-warnings`: the guest's console log (at `loglevel=7`,
//! so KERN_INFO lines such as `segfault at` are there too) has no kernel
//! warning or error line that nobody explained. Patterns are below and
//! match whatever the case; lines that are benign on some config are
//! listed, one regex per line with a `# why` comment, in
//! `kernel-configs/boot-log-allow.txt`.
//!
//! The whole log is judged, also while a probe asks the kernel for a stack
//! dump (between `ksh_probe: WHAT begin` and `... end`): there only the
//! dump's own header ([`REQUESTED_DUMP_HEADERS`]) is expected, and a
//! warning the unwinder or another probe raises meanwhile still counts. A
//! window that never ends is itself a finding.

use std::path::Path;

use anyhow::{Context, Result};
use regex::{Regex, RegexBuilder};

/// What counts as a kernel warning or error on the console (matched
/// without regard to case).
const WARNING_PATTERNS: &[&str] = &[
    // WARN(), and "WARNING: CPU: ..." of a WARN_ON.
    r"\bwarning:",
    r"\bbug:",
    // "Oops: 0002 [#1]" (x86), "Internal error: Oops: ..." (arm64); not
    // the command line's "oops=panic".
    r"\boops:",
    r"kernel panic",
    r"failed to",
    r"not restricted",
    r"inconsistent kallsyms",
    r"kallsyms.*(error|failed)",
    // A stack dump nobody asked for.
    r"call trace:",
    r"unable to handle kernel",
    r"general protection fault",
    r"\bsegfault\b",
    // Hung tasks, lockups, RCU stalls.
    r"blocked for more than \d+ seconds",
    r"\b(soft|hard) lockup\b",
    r"rcu.{0,40}stall",
    // Sanitizers and debug checkers, should a config turn them on.
    r"\bubsan\b",
    r"\bkasan\b",
    r"\bkfence\b.*\bbug\b",
    r"kmemleak",
    r"possible (recursive|circular) locking",
    r"inconsistent lock state",
    r"\blockdep\b",
];

/// The header lines of a stack dump a probe requested (`dump_stack()` on
/// x86_64 and arm64): expected inside a probe's window, a warning outside.
const REQUESTED_DUMP_HEADERS: &[&str] = &[r"^\s*(\[[ 0-9.]+\]\s*)?call trace:\s*$"];

/// The allow-list file, relative to the project root.
pub const ALLOW_FILE: &str = "kernel-configs/boot-log-allow.txt";

/// Patterns of the allow-list (comments and blank lines skipped).
pub fn allow_list(root: &Path) -> Result<Vec<Regex>> {
    let path = root.join(ALLOW_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_allow_list(&text).with_context(|| format!("in {}", path.display()))
}

/// The allow-list's patterns from its text (the judge gets the text from
/// the runner, which read it with [`allow_list`]).
pub fn parse_allow_list(text: &str) -> Result<Vec<Regex>> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (pat, why) = l.split_once(" # ").unwrap_or((l, ""));
        anyhow::ensure!(
            !why.trim().is_empty(),
            "line {}: every allowed pattern needs a reason (`PATTERN # why`)",
            i + 1
        );
        out.push(Regex::new(pat.trim()).with_context(|| format!("line {}", i + 1))?);
    }
    Ok(out)
}

fn case_insensitive(patterns: &[&str]) -> Vec<Regex> {
    patterns
        .iter()
        .map(|p| {
            RegexBuilder::new(p)
                .case_insensitive(true)
                .build()
                .expect("valid pattern")
        })
        .collect()
}

/// Warning lines of `console` that no allow-list pattern explains (and a
/// probe window without its end, as a line of its own), and how many
/// lines were allowed.
pub fn unexplained(console: &str, allow: &[Regex]) -> (Vec<String>, usize) {
    let warn = case_insensitive(WARNING_PATTERNS);
    let dump_headers = case_insensitive(REQUESTED_DUMP_HEADERS);
    // The windows open now: (what, the begin line).
    let mut open: Vec<(String, String)> = Vec::new();
    let mut bad = Vec::new();
    let mut allowed = 0;
    for line in console.lines() {
        if let Some(marker) = line.split("ksh_probe: ").nth(1) {
            if let Some(what) = marker.trim_end().strip_suffix(" begin") {
                open.push((what.to_string(), line.trim_end().to_string()));
                continue;
            }
            if let Some(what) = marker.trim_end().strip_suffix(" end") {
                open.retain(|(w, _)| w != what);
                continue;
            }
        }
        if !warn.iter().any(|w| w.is_match(line)) {
            continue;
        }
        if !open.is_empty() && dump_headers.iter().any(|h| h.is_match(line)) {
            continue;
        }
        if allow.iter().any(|a| a.is_match(line)) {
            allowed += 1;
        } else {
            bad.push(line.trim_end().to_string());
        }
    }
    for (what, begin) in open {
        bad.push(format!(
            "{begin}  <- the probe's window never ended (no \"ksh_probe: {what} end\")"
        ));
    }
    (bad, allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_warnings_outside_intended_traces() {
        let allow =
            parse_allow_list("# header\nACPI: .*Failed to # tiny config without ACPI tables\n")
                .unwrap();
        let log = "[    0.1] ok\n\
                   [    0.2] kprobes: Failed to populate blacklist (error -22), kprobes not restricted, be careful using them!\n\
                   [    0.3] ACPI: foo Failed to bar\n\
                   [    1.0] ksh_probe: dump_stack begin\n\
                   [    1.0] Call Trace:\n\
                   [    1.0] ksh_probe: dump_stack end\n\
                   [    1.1] WARNING: CPU: 0 PID: 1 at x\n\
                   [    1.2] Call Trace:\n";
        let (bad, allowed) = unexplained(log, &allow);
        assert_eq!(allowed, 1);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].contains("not restricted") && bad[1].contains("WARNING"));
        assert!(bad[2].contains("Call Trace"), "a dump outside a window");
        assert!(
            parse_allow_list("x\n").is_err(),
            "a pattern without a reason"
        );
    }

    #[test]
    fn warnings_inside_a_probe_window_count() {
        // A WARN raised while a probe's dump_stack() window is open (by the
        // unwinder, or by the other probe lane) is not part of the dump.
        let log = "[    1.0] ksh_probe: dump_stack begin\n\
                   [    1.0] CPU: 0 UID: 0 PID: 84 Comm: ksh_bt\n\
                   [    1.0] ------------[ cut here ]------------\n\
                   [    1.0] WARNING: CPU: 0 PID: 84 at kernel/x.c:1 f+0x1/0x2\n\
                   [    1.0] Call Trace:\n\
                   [    1.1] ksh_probe: dump_stack end\n";
        let (bad, _) = unexplained(log, &[]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("WARNING: CPU"));
    }

    #[test]
    fn patterns_ignore_case_and_cover_the_checkers() {
        for line in [
            "[ 1.0] foo: failed to bar",
            "[ 1.0] INFO: task kworker:1 blocked for more than 120 seconds.",
            "[ 1.0] rcu: INFO: rcu_sched self-detected stall on CPU",
            "[ 1.0] UBSAN: shift-out-of-bounds in x.c:1:2",
            "[ 1.0] BUG: KASAN: slab-out-of-bounds in f+0x1/0x2",
            "[ 1.0] kmemleak: 1 new suspected memory leaks",
            "[ 1.0] WARNING: possible circular locking dependency detected",
            "[ 1.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!",
            "[ 1.0] init[1]: segfault at 0 ip 0 sp 0 error 4",
            "[ 1.0] Oops: general protection fault, probably for non-canonical address",
            "[ 1.0] Internal error: Oops: 0000000096000004 [#1] SMP",
        ] {
            assert_eq!(unexplained(line, &[]).0.len(), 1, "{line}");
        }
        let cmdline = "[ 0.0] Kernel command line: console=ttyS0 panic=-1 oops=panic rdinit=/init";
        assert_eq!(unexplained(cmdline, &[]).0, Vec::<String>::new());
    }

    #[test]
    fn a_window_that_never_ends_is_a_finding() {
        let log = "[ 1.0] ksh_probe: dump_stack begin\n[ 1.0] Call Trace:\n[ 1.1] WARNING: x\n";
        let (bad, _) = unexplained(log, &[]);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[1].contains("never ended"), "{bad:?}");
    }

    #[test]
    fn the_repository_allow_list_parses() {
        allow_list(&crate::layout::project_root()).unwrap();
    }
}
