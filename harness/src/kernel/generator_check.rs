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
//! The check runs here, as a build step, and leaves a [`GeneratorsRecord`];
//! the verdict is the judge's (`results::judge`).
//!
//! A kernel's own link passes only reach the paths its symbols need: the
//! gcc minimal kernels never pad `kallsyms_size_exc` to the previous pass's
//! length (SIZES-FORMAT.md, writer rule 3), so a generator that dropped the
//! rule would agree with the other there and fail a clang arm64 link
//! later. The case also runs the build's two generators on the maps in
//! `generator-fixtures/`, each made to take such a path, and requires equal
//! output that shows the path was taken.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::cell::Kernel;

/// What `link-vmlinux.sh` prints when the two outputs differ.
pub const DISAGREE_MARKER: &str = "scripts/kallsyms-rs and scripts/kallsyms disagree";

/// The option that makes the link compare the generators.
pub const CHECK_OPTION: &str = "CONFIG_KALLSYMS_RUST_GENERATOR_CHECK";

/// What the generator check left after a build step: the judge
/// (`results::judge`) turns it into `build/generators-agree`'s verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GeneratorsRecord {
    /// The kernel has no [`CHECK_OPTION`] (the baseline: no Rust
    /// generator).
    NotConfigured,
    /// The build dir could not be read.
    Unreadable { error: String },
    /// The link stopped on a disagreement: the marker line and up to 20
    /// lines after it, from `build_log`.
    LinkStopped {
        shown: Vec<String>,
        build_log: PathBuf,
    },
    /// A finished build: the link passes found in `dir` (Rust outputs),
    /// and every problem of their comparison and of the fixtures.
    Compared {
        dir: PathBuf,
        passes: Vec<String>,
        problems: Vec<String>,
    },
}

/// The record of a build that failed: `Some` when the link stopped on a
/// disagreement (the marker and the lines after it), `None` when it failed
/// for another reason.
pub fn check_failed_build(build_log: &Path) -> Option<GeneratorsRecord> {
    let log = fs::read_to_string(build_log).ok()?;
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| l.contains(DISAGREE_MARKER))?;
    let shown = &lines[at..lines.len().min(at + 21)];
    Some(GeneratorsRecord::LinkStopped {
        shown: shown.iter().map(|l| l.to_string()).collect(),
        build_log: build_log.to_path_buf(),
    })
}

/// The check of a finished build in `dir`: each pass's Rust output
/// (`.tmp_vmlinuxN.kallsyms.S`) has its C twin (`.c.S`) and both are
/// byte for byte equal; at least one pass (the judge requires it); the
/// fixtures agree. A kernel without the check configured (the baseline,
/// which has no Rust generator) is declared not applicable in
/// `ksh_proto::APPLICABILITY`.
pub fn check_built(dir: &Path, kernel: Kernel) -> GeneratorsRecord {
    let config = fs::read_to_string(dir.join(".config")).unwrap_or_default();
    if !config.lines().any(|l| l == format!("{CHECK_OPTION}=y")) {
        return GeneratorsRecord::NotConfigured;
    }
    let mut passes = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return GeneratorsRecord::Unreadable {
                error: format!("reading {}: {e}", dir.display()),
            }
        }
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
    let mut problems = Vec::new();
    if passes.is_empty() {
        return GeneratorsRecord::Compared {
            dir: dir.to_path_buf(),
            passes,
            problems,
        };
    }
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
    problems.extend(fixture_problems(dir, kernel));
    GeneratorsRecord::Compared {
        dir: dir.to_path_buf(),
        passes,
        problems,
    }
}

/// A map that takes a generator path no minimal kernel's link reaches,
/// and how to tell from the output that it was taken.
struct Fixture {
    name: &'static str,
    map: &'static str,
    /// `Some(reason)` when the (agreed) output does not show the path.
    took_path: fn(&str) -> Option<String>,
}

/// The options `link-vmlinux.sh` passes on a `KALLSYMS_ALL` kernel.
const FIXTURE_OPTIONS: [&str; 3] = ["--all-symbols", "--symbol-sizes", "--compact-sizes"];

const FIXTURES: [Fixture; 2] = [
    Fixture {
        name: "exc-longer-previous.map",
        map: include_str!("generator-fixtures/exc-longer-previous.map"),
        took_path: exc_padded_to_previous,
    },
    Fixture {
        name: "gap-ranking.map",
        map: include_str!("generator-fixtures/gap-ranking.map"),
        took_path: gaps_ranked_and_escaped,
    },
];

/// The `.long` values of table `label` in generator output `asm`.
fn table_longs<'a>(asm: &'a str, label: &str) -> Vec<&'a str> {
    let head = format!("{label}:");
    asm.lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| l.starts_with("\t.long"))
        .map(|l| l.trim_start_matches("\t.long").trim())
        .collect()
}

/// `gap-ranking.map`: 16 distinct gaps compete for the 14 slots of
/// `kallsyms_size_gaps` (writer rule 1): gap 4 four times (two of them an
/// alias pair, whose next address skips the alias), gap 0 three times, 8
/// twice, then 0x10..0x1c once each, so ties decide by ascending value and
/// 0x1b and 0x1c escape (rule 2); so do a symbol larger than the distance
/// to the next one (a nested pair: both) and the last function (its next
/// symbol, `_etext`, is far away). A size-0 symbol gets code 14. A writer
/// that ranks, breaks ties, escapes or treats aliases otherwise writes
/// other tables.
fn gaps_ranked_and_escaped(asm: &str) -> Option<String> {
    let gaps = table_longs(asm, "kallsyms_size_gaps");
    let want_gaps = [
        "0x4", "0", "0x8", "0x10", "0x11", "0x12", "0x13", "0x14", "0x15", "0x16", "0x17", "0x18",
        "0x19", "0x1a",
    ];
    if gaps != want_gaps {
        return Some(format!(
            "kallsyms_size_gaps is [{}], not [{}] (writer rule 1: by frequency, ties by value)",
            gaps.join(", "),
            want_gaps.join(", ")
        ));
    }
    let exc = table_longs(asm, "kallsyms_size_exc");
    let want_exc = ["0xe5", "0xe4", "0x200", "0x20", "0x10"];
    if exc != want_exc {
        return Some(format!(
            "kallsyms_size_exc is [{}], not [{}] (writer rule 2: gaps 0x1b and 0x1c ranked out, the nested pair and the last function escape)",
            exc.join(", "),
            want_exc.join(", ")
        ));
    }
    None
}

/// `exc-longer-previous.map`: three sizes escape the 4-bit codes, and the
/// previous pass's `kallsyms_size_exc` was 8 entries long (0x20 bytes up to
/// `kallsyms_seqs_of_names`), so the table is those three and 5 zeros.
fn exc_padded_to_previous(asm: &str) -> Option<String> {
    let values = table_longs(asm, "kallsyms_size_exc");
    let want = ["0x41", "0x43", "0x47", "0", "0", "0", "0", "0"];
    (values != want).then(|| {
        format!(
            "kallsyms_size_exc is [{}], not the 3 escaped sizes padded to the previous pass's 8 entries (writer rule 3)",
            values.join(", ")
        )
    })
}

/// Runs one generator of the build in `dir` on `map`, bounded in time.
fn run_generator(dir: &Path, generator: &str, own: &[&str], map: &Path) -> Result<String, String> {
    let bin = dir.join(generator);
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", "60"])
        .arg(&bin)
        .args(own)
        .args(FIXTURE_OPTIONS)
        .arg(map);
    let line = crate::process::shell_line(&cmd);
    let out = cmd.output().map_err(|e| format!("`{line}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("`{line}`: output is not UTF-8"))
}

/// Both generators of the build in `dir` on every fixture: a problem for
/// each fixture whose outputs differ or do not show the path it is about.
fn fixture_problems(dir: &Path, kernel: Kernel) -> Vec<String> {
    let scratch = dir.join(".ksh-generator-fixtures");
    if let Err(e) = fs::create_dir_all(&scratch) {
        return vec![format!("{}: {e}", scratch.display())];
    }
    let mut problems = Vec::new();
    for f in &FIXTURES {
        let map = scratch.join(f.name);
        if let Err(e) = fs::write(&map, f.map) {
            problems.push(format!("{}: {e}", map.display()));
            continue;
        }
        let c = run_generator(dir, "scripts/kallsyms", &[], &map);
        let format = kernel.rust_generator_format();
        let rust = run_generator(dir, "scripts/kallsyms-rs/kallsyms-rs", &[&format], &map);
        match (c, rust) {
            (Ok(c), Ok(rust)) if c == rust => {
                if let Some(why) = (f.took_path)(&rust) {
                    problems.push(format!("fixture {}: {why}", map.display()));
                }
            }
            (Ok(c), Ok(rust)) => {
                let at = c
                    .lines()
                    .zip(rust.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(c.lines().count().min(rust.lines().count()));
                let line = |t: &str| {
                    t.lines()
                        .nth(at)
                        .unwrap_or("(end of output)")
                        .trim()
                        .to_string()
                };
                problems.push(format!(
                    "fixture {}: the C and Rust generators wrote different tables (first difference at line {}: C `{}`, Rust `{}`; rerun: `{} {opts} {map}` and `{} {format} {opts} {map}`)",
                    map.display(),
                    at + 1,
                    line(&c),
                    line(&rust),
                    dir.join("scripts/kallsyms").display(),
                    dir.join("scripts/kallsyms-rs/kallsyms-rs").display(),
                    opts = FIXTURE_OPTIONS.join(" "),
                    map = map.display(),
                ));
            }
            (c, rust) => problems.extend(c.err().into_iter().chain(rust.err())),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The passes compared in `dir` and their problems, joined (the
    /// verdict on them is the judge's, tested in `results::judge`).
    fn compared(dir: &Path) -> (Vec<String>, String) {
        match check_built(dir, Kernel::V6_12) {
            GeneratorsRecord::Compared {
                passes, problems, ..
            } => (passes, problems.join("; ")),
            other => panic!("{other:?}"),
        }
    }

    /// The problems found in `dir`, joined.
    fn problems(dir: &Path) -> String {
        compared(dir).1
    }

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (n, t) in files {
            fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    const CHECKED: &str = "CONFIG_KALLSYMS_RUST_GENERATOR_CHECK=y\n";

    /// Stands in for the build's two generators: each prints its file for
    /// `exc-longer-previous.map`, and the right tables for `gap-ranking.map`.
    fn generators(d: &Path, c: &str, rust: &str) {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(d.join("scripts/kallsyms-rs")).unwrap();
        let ranked = d.join("ranked.out");
        fs::write(&ranked, RANKED).unwrap();
        for (bin, out) in [
            ("scripts/kallsyms", c),
            ("scripts/kallsyms-rs/kallsyms-rs", rust),
        ] {
            let text = d.join(format!("{bin}.out"));
            fs::write(&text, out).unwrap();
            let script = d.join(bin);
            fs::write(
                &script,
                format!(
                    // The map is the last argument (the Rust one gets
                    // --format first).
                    "#!/bin/sh\nfor map; do :; done\ncase \"$map\" in *gap-ranking.map) cat '{}';; *) cat '{}';; esac\n",
                    ranked.display(),
                    text.display()
                ),
            )
            .unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// The tables both generators write for `gap-ranking.map`.
    const RANKED: &str = "kallsyms_size_gaps:\n\t.long\t0x4\n\t.long\t0\n\t.long\t0x8\n\t.long\t0x10\n\t.long\t0x11\n\t.long\t0x12\n\t.long\t0x13\n\t.long\t0x14\n\t.long\t0x15\n\t.long\t0x16\n\t.long\t0x17\n\t.long\t0x18\n\t.long\t0x19\n\t.long\t0x1a\n\nkallsyms_size_exc:\n\t.long\t0xe5\n\t.long\t0xe4\n\t.long\t0x200\n\t.long\t0x20\n\t.long\t0x10\n\n";

    const PADDED: &str = "kallsyms_size_exc:\n\t.long\t0x41\n\t.long\t0x43\n\t.long\t0x47\n\t.long\t0\n\t.long\t0\n\t.long\t0\n\t.long\t0\n\t.long\t0\n\n";

    fn equal_pairs() -> tempfile::TempDir {
        dir_with(&[
            (".config", CHECKED),
            (".tmp_vmlinux1.kallsyms.S", "a"),
            (".tmp_vmlinux1.kallsyms.c.S", "a"),
            (".tmp_vmlinux2.kallsyms.S", "b"),
            (".tmp_vmlinux2.kallsyms.c.S", "b"),
        ])
    }

    #[test]
    fn equal_pairs_pass() {
        let d = equal_pairs();
        generators(d.path(), PADDED, PADDED);
        let (passes, problems) = compared(d.path());
        assert_eq!(passes.len(), 2);
        assert_eq!(problems, "");
    }

    #[test]
    fn fixtures_must_agree_and_take_their_path() {
        // Agreeing generators that both dropped writer rule 3.
        let unpadded = PADDED.replace("\t.long\t0\n", "");
        let d = equal_pairs();
        generators(d.path(), &unpadded, &unpadded);
        let m = problems(d.path());
        assert!(
            m.contains("[0x41, 0x43, 0x47], not the 3 escaped sizes padded"),
            "{m}"
        );
        // One generator dropped it.
        generators(d.path(), &unpadded, PADDED);
        let m = problems(d.path());
        assert!(
            m.contains(
                "different tables (first difference at line 5: C ``, Rust `.long\t0`; rerun: `"
            ),
            "{m}"
        );
        // A generator that fails names its command line.
        fs::remove_file(d.path().join("scripts/kallsyms")).unwrap();
        let m = problems(d.path());
        assert!(
            m.contains("scripts/kallsyms --all-symbols --symbol-sizes --compact-sizes"),
            "{m}"
        );
    }

    #[test]
    fn gap_ranking_names_the_rule_broken() {
        let longs = |label: &str, v: &[&str]| {
            let mut t = format!("{label}:\n");
            for x in v {
                t.push_str(&format!("\t.long\t{x}\n"));
            }
            t + "\n"
        };
        let gaps = [
            "0x4", "0", "0x8", "0x10", "0x11", "0x12", "0x13", "0x14", "0x15", "0x16", "0x17",
            "0x18", "0x19", "0x1a",
        ];
        let exc = ["0xe5", "0xe4", "0x200", "0x20", "0x10"];
        let good = longs("kallsyms_size_gaps", &gaps) + &longs("kallsyms_size_exc", &exc);
        assert_eq!(gaps_ranked_and_escaped(&good), None);
        // Ties broken by descending value: 0x1c..0x12 instead of 0x10..0x1a.
        let mut tie = gaps;
        tie[3..].copy_from_slice(&[
            "0x1c", "0x1b", "0x1a", "0x19", "0x18", "0x17", "0x16", "0x15", "0x14", "0x13", "0x12",
        ]);
        let bad = longs("kallsyms_size_gaps", &tie) + &longs("kallsyms_size_exc", &exc);
        assert!(gaps_ranked_and_escaped(&bad).is_some_and(|m| m.contains("rule 1")));
        let bad = longs("kallsyms_size_gaps", &gaps) + &longs("kallsyms_size_exc", &exc[..4]);
        assert!(gaps_ranked_and_escaped(&bad).is_some_and(|m| m.contains("rule 2")));
    }

    #[test]
    fn nothing_compared_is_recorded_as_no_pass() {
        let d = dir_with(&[(".config", CHECKED)]);
        assert!(compared(d.path()).0.is_empty());
    }

    #[test]
    fn missing_twin_and_difference_fail() {
        let d = dir_with(&[
            (".config", CHECKED),
            (".tmp_vmlinux1.kallsyms.S", "abc"),
            (".tmp_vmlinux1.kallsyms.c.S", "abd"),
            (".tmp_vmlinux2.kallsyms.S", "b"),
        ]);
        let m = problems(d.path());
        assert!(m.contains("first at byte 2"), "{m}");
        assert!(m.contains(".tmp_vmlinux2.kallsyms.c.S is missing"), "{m}");
    }

    #[test]
    fn unconfigured_is_recorded_as_such() {
        let d = dir_with(&[(".config", "CONFIG_KALLSYMS=y\n")]);
        assert_eq!(
            check_built(d.path(), Kernel::V6_12),
            GeneratorsRecord::NotConfigured
        );
    }

    #[test]
    fn a_failed_link_names_the_disagreement() {
        let d = dir_with(&[(
            "build.log",
            "  KSYMS   .tmp_vmlinux1.kallsyms.S\nkallsyms: scripts/kallsyms-rs and scripts/kallsyms disagree on .tmp_vmlinux1.sized.syms:\n5c5\n< x\n---\n> y\nmake: *** Error 1\n",
        )]);
        let Some(GeneratorsRecord::LinkStopped { shown, .. }) =
            check_failed_build(&d.path().join("build.log"))
        else {
            panic!()
        };
        let m = shown.join("\n");
        assert!(
            m.contains("disagree on .tmp_vmlinux1") && m.contains("> y"),
            "{m}"
        );
        let other = dir_with(&[("build.log", "cc1: error\n")]);
        assert!(check_failed_build(&other.path().join("build.log")).is_none());
    }
}
