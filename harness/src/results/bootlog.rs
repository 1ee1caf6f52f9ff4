//! `boot/no-kernel-warnings`: the guest's console log has no kernel
//! warning or error line that nobody explained. Patterns are below; lines
//! that are benign on some config are listed, one regex per line with a
//! `# why` comment, in `kernel-configs/boot-log-allow.txt`. Stack traces
//! that a probe prints on purpose (between `ksh_probe: WHAT begin` and
//! `... end` markers) are not warnings.

use std::path::Path;

use anyhow::{Context, Result};
use regex::Regex;

/// What counts as a kernel warning or error on the console.
const WARNING_PATTERNS: &[&str] = &[
    r"WARNING:",
    r"BUG:",
    r"\bOops\b",
    r"Kernel panic",
    r"Failed to",
    r"not restricted",
    r"Inconsistent kallsyms",
    r"Call Trace:",
    r"Call trace:",
    r"Unable to handle kernel",
    r"general protection fault",
    r"\bsegfault\b",
    r"kallsyms.*(error|failed)",
];

/// The allow-list file, relative to the project root.
pub const ALLOW_FILE: &str = "kernel-configs/boot-log-allow.txt";

/// Patterns of the allow-list (comments and blank lines skipped).
pub fn allow_list(root: &Path) -> Result<Vec<Regex>> {
    let path = root.join(ALLOW_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_allow_list(&text).with_context(|| format!("in {}", path.display()))
}

fn parse_allow_list(text: &str) -> Result<Vec<Regex>> {
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

/// Warning lines of `console` that no allow-list pattern explains, and how
/// many lines were allowed.
pub fn unexplained(console: &str, allow: &[Regex]) -> (Vec<String>, usize) {
    let warn: Vec<Regex> = WARNING_PATTERNS
        .iter()
        .map(|p| Regex::new(p).expect("valid pattern"))
        .collect();
    let mut intended: Option<String> = None;
    let mut bad = Vec::new();
    let mut allowed = 0;
    for line in console.lines() {
        if let Some(what) = line
            .split("ksh_probe: ")
            .nth(1)
            .and_then(|r| r.strip_suffix(" begin"))
        {
            intended = Some(format!("ksh_probe: {what} end"));
            continue;
        }
        if let Some(end) = &intended {
            if line.contains(end.as_str()) {
                intended = None;
            }
            continue;
        }
        if !warn.iter().any(|w| w.is_match(line)) {
            continue;
        }
        if allow.iter().any(|a| a.is_match(line)) {
            allowed += 1;
        } else {
            bad.push(line.trim_end().to_string());
        }
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
                   [    1.1] WARNING: CPU: 0 PID: 1 at x\n";
        let (bad, allowed) = unexplained(log, &allow);
        assert_eq!(allowed, 1);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].contains("not restricted") && bad[1].contains("WARNING"));
        assert!(
            parse_allow_list("x\n").is_err(),
            "a pattern without a reason"
        );
    }

    #[test]
    fn the_repository_allow_list_parses() {
        allow_list(&crate::layout::project_root()).unwrap();
    }
}
