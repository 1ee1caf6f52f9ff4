//! `build/generators-agree`: the C `scripts/kallsyms` and the Rust
//! `scripts/kallsyms-rs` write the same tables.
//!
//! The comparison itself runs inside the kernel build (patch 0009,
//! `CONFIG_KALLSYMS_RUST_GENERATOR_CHECK`): in every link pass
//! `link-vmlinux.sh` runs both generators on the same map, keeps the C
//! output beside the Rust one as `.tmp_vmlinuxN.kallsyms.c.S`, and fails
//! the link with [`DISAGREE_MARKER`] if they differ. So a bisect step or a
//! plain `make` gets the check too. This case makes its verdict visible:
//! it fails with the link's own message when the build stopped there, and
//! after a build reads every pass's pair of outputs again, so a build that
//! compared nothing (the check not configured, no pass found) cannot pass.

use std::fs;
use std::path::Path;

use crate::results::report::Status;

/// What `link-vmlinux.sh` prints when the two outputs differ.
pub const DISAGREE_MARKER: &str = "scripts/kallsyms-rs and scripts/kallsyms disagree";

/// The option that makes the link compare the generators.
pub const CHECK_OPTION: &str = "CONFIG_KALLSYMS_RUST_GENERATOR_CHECK";

/// The verdict for a build that failed: `Some` (a failure with the link's
/// message and the lines after it) when the link stopped on a
/// disagreement, `None` when it failed for another reason.
pub fn judge_failed_build(build_log: &Path) -> Option<Status> {
    let log = fs::read_to_string(build_log).ok()?;
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| l.contains(DISAGREE_MARKER))?;
    let shown = &lines[at..lines.len().min(at + 21)];
    Some(Status::Fail(format!(
        "the link stopped: the C and Rust generators wrote different tables (first differences, `diff C Rust`):\n{}\nbuild log: {}",
        shown.join("\n"),
        build_log.display()
    )))
}

/// The verdict for a finished build in `dir`: each pass's Rust output
/// (`.tmp_vmlinuxN.kallsyms.S`) has its C twin (`.c.S`) and both are
/// byte for byte equal; at least one pass. A kernel without the check
/// configured (the baseline, which has no Rust generator) is declared not
/// applicable in `ksh_proto::APPLICABILITY` and skips with that reason.
pub fn judge_built(dir: &Path) -> Status {
    let config = fs::read_to_string(dir.join(".config")).unwrap_or_default();
    if !config.lines().any(|l| l == format!("{CHECK_OPTION}=y")) {
        return Status::Skip(
            ksh_proto::not_applicable("build", "generators-agree", "", &|_| None)
                .unwrap_or("the generator check is not configured")
                .to_string(),
        );
    }
    let mut passes = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return Status::Fail(format!("reading {}: {e}", dir.display())),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp_vmlinux")
            && name.ends_with(".kallsyms.S")
            && !name.ends_with(".c.S")
        {
            passes.push(name);
        }
    }
    passes.sort();
    if passes.is_empty() {
        return Status::Fail(format!(
            "{CHECK_OPTION}=y, but no link pass output (.tmp_vmlinux*.kallsyms.S) is in {}: nothing was compared",
            dir.display()
        ));
    }
    let mut problems = Vec::new();
    for rust in &passes {
        let c = rust.replace(".kallsyms.S", ".kallsyms.c.S");
        match (fs::read(dir.join(rust)), fs::read(dir.join(&c))) {
            (Ok(r), Ok(cc)) if r == cc && !r.is_empty() => {}
            (Ok(r), Ok(cc)) if r.is_empty() || cc.is_empty() => {
                problems.push(format!("{rust} or {c} is empty"))
            }
            (Ok(r), Ok(cc)) => problems.push(format!(
                "{rust} and {c} differ (first at byte {})",
                r.iter()
                    .zip(&cc)
                    .position(|(a, b)| a != b)
                    .unwrap_or(r.len().min(cc.len()))
            )),
            (_, Err(_)) => problems.push(format!(
                "{c} is missing: the C generator did not run on this pass"
            )),
            (Err(e), _) => problems.push(format!("{rust}: {e}")),
        }
    }
    if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail(format!("in {}: {}", dir.display(), problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (n, t) in files {
            fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    const CHECKED: &str = "CONFIG_KALLSYMS_RUST_GENERATOR_CHECK=y\n";

    #[test]
    fn equal_pairs_pass() {
        let d = dir_with(&[
            (".config", CHECKED),
            (".tmp_vmlinux1.kallsyms.S", "a"),
            (".tmp_vmlinux1.kallsyms.c.S", "a"),
            (".tmp_vmlinux2.kallsyms.S", "b"),
            (".tmp_vmlinux2.kallsyms.c.S", "b"),
        ]);
        assert_eq!(judge_built(d.path()), Status::Pass);
    }

    #[test]
    fn nothing_compared_fails() {
        let d = dir_with(&[(".config", CHECKED)]);
        assert!(
            matches!(judge_built(d.path()), Status::Fail(m) if m.contains("nothing was compared"))
        );
    }

    #[test]
    fn missing_twin_and_difference_fail() {
        let d = dir_with(&[
            (".config", CHECKED),
            (".tmp_vmlinux1.kallsyms.S", "abc"),
            (".tmp_vmlinux1.kallsyms.c.S", "abd"),
            (".tmp_vmlinux2.kallsyms.S", "b"),
        ]);
        let Status::Fail(m) = judge_built(d.path()) else {
            panic!()
        };
        assert!(m.contains("first at byte 2"), "{m}");
        assert!(m.contains(".tmp_vmlinux2.kallsyms.c.S is missing"), "{m}");
    }

    #[test]
    fn unconfigured_skips_with_the_registry_reason() {
        let d = dir_with(&[(".config", "CONFIG_KALLSYMS=y\n")]);
        assert!(matches!(judge_built(d.path()), Status::Skip(m) if m.contains("RUST_GENERATOR")));
    }

    #[test]
    fn a_failed_link_names_the_disagreement() {
        let d = dir_with(&[(
            "build.log",
            "  KSYMS   .tmp_vmlinux1.kallsyms.S\nkallsyms: scripts/kallsyms-rs and scripts/kallsyms disagree on .tmp_vmlinux1.sized.syms:\n5c5\n< x\n---\n> y\nmake: *** Error 1\n",
        )]);
        let Some(Status::Fail(m)) = judge_failed_build(&d.path().join("build.log")) else {
            panic!()
        };
        assert!(
            m.contains("disagree on .tmp_vmlinux1") && m.contains("> y"),
            "{m}"
        );
        let other = dir_with(&[("build.log", "cc1: error\n")]);
        assert!(judge_failed_build(&other.path().join("build.log")).is_none());
    }
}
