//! Known-bad kernels: small patches on top of the series
//! (`patches/<kernel>/mutants/*.patch`, one directory per kernel line, see
//! [`dir`]), each planting one bug that some probe must catch. Every line
//! carries the same mutants, by name, meaning and `must-fail:` lines, each
//! written against that line's patched tree (7.3's are ported to its code,
//! not rebased). `cargo xtask mutants --kernel K` applies them one at a
//! time to K's patched source tree, builds incrementally in the patched
//! build dir, and runs every probe.
//!
//! A mutant is applied in place, so the tree records it
//! (`.ksh-mutant.patch`): whoever prepares the tree next (an interrupted
//! mutant run, then `cargo xtask test`) reverts it first, and a build of a
//! mutant is never mistaken for the series.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cell::Kernel;

/// The record, in the tree, of the mutant applied to it.
pub const APPLIED_MARKER: &str = ".ksh-mutant.patch";

/// The mutants of kernel line `kernel`: `patches/<version>/mutants/`,
/// beside its series, since each applies on top of that series.
pub fn dir(kernel: Kernel) -> PathBuf {
    crate::layout::patches_dir(kernel.version()).join("mutants")
}

/// [`dir`] as messages name it, relative to the project root
/// (`patches/7.3/mutants/`).
pub fn dir_name(kernel: Kernel) -> String {
    format!("patches/{}/mutants/", kernel.version())
}

/// Every mutant of kernel line `kernel` ([`load`] of its [`dir`]).
pub fn load_for(kernel: Kernel) -> Result<Vec<Mutant>> {
    load(&dir(kernel))
}

/// One mutant: `NAME.patch`. Its header (the lines before the first
/// blank line) has
///
/// - `mutant: what it breaks` (the first line);
/// - `must-fail: PROBE/CASE ...` (one or more lines, required): the cases
///   the mutant is about. Each must fail on it with its own verdict: a
///   probe case with its count line (N > 0 of M mismatched), a `build/...`
///   case through its own check (for `build/generators-agree`, the link's
///   disagreement marker or the comparison after the build), never as
///   "not run". That is how a case shows, in CI, that it fails on a kernel
///   with its bug;
/// - `crashes: TEXT` (optional): the mutant crashes the kernel by design,
///   and the VM must stop with a kernel panic whose console excerpt
///   contains TEXT. Without it a mutant whose VM does not complete is
///   broken.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub name: String,
    pub description: String,
    /// Cases (`probe/case`, without the cell) that must fail on every
    /// arch.
    pub must_fail: Vec<String>,
    /// Cases that must fail on one arch only (`probe/case@arch` on a
    /// `must-fail:` line): the mutant's bug shows there and not elsewhere
    /// (an unwinder's `? ` entries on x86_64, `FTRACE_MCOUNT_MAX_OFFSET`).
    pub must_fail_on: Vec<(String, String)>,
    /// The panic excerpt of a mutant that crashes the kernel by design.
    pub crashes: Option<String>,
    pub path: PathBuf,
}

impl Mutant {
    /// A build mutant: every case it must fail is decided by the build
    /// (`build/...`), so its kernel need not boot.
    pub fn is_build_mutant(&self) -> bool {
        self.must_fail
            .iter()
            .chain(self.must_fail_on.iter().map(|(c, _)| c))
            .all(|c| c.starts_with("build/"))
    }

    /// The cases that must fail on `arch` (empty: the mutant is not for it).
    pub fn cases_on(&self, arch: &str) -> Vec<String> {
        self.must_fail
            .iter()
            .cloned()
            .chain(
                self.must_fail_on
                    .iter()
                    .filter(|(_, a)| a == arch)
                    .map(|(c, _)| c.clone()),
            )
            .collect()
    }
}

/// What `build/kernel`'s failure says when `make` itself failed
/// (`kbuild`), as opposed to a harness error around it.
pub const MAKE_FAILED: &str = "make failed";

/// The header line listing the cases a mutant must fail.
const MUST_FAIL: &str = "must-fail:";
/// The header line of a mutant that crashes the kernel.
const CRASHES: &str = "crashes:";

/// The cases a `must-fail:` line may name: every counted case of the probe
/// registry, and the build's checks; `build/kernel` only alone, for a
/// mutant about the build itself (one that does not compile: the case must
/// fail with `make`'s failure, [`MAKE_FAILED`]). Not the `boot/` cases the
/// host judges from the VM and its console (no count line: they cannot show
/// what the mutant broke).
pub fn must_fail_candidates() -> Vec<String> {
    let mut out: Vec<String> = crate::cell::BUILD_CASES
        .iter()
        .map(|(p, c)| format!("{p}/{c}"))
        .collect();
    for p in ksh_proto::PROBES {
        for c in p.cases {
            if ksh_proto::is_counted(p.name, c) {
                out.push(format!("{}/{c}", p.name));
            }
        }
    }
    out
}

/// Every mutant in `dir`, by name. A mutant without a `must-fail:` line,
/// or naming a case that does not exist (renamed since), is an error that
/// names its file and the case it looked for.
pub fn load(dir: &Path) -> Result<Vec<Mutant>> {
    let candidates = must_fail_candidates();
    let mut out = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("patch") {
            continue;
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let Some(description) = text.lines().next().and_then(|l| l.strip_prefix("mutant: ")) else {
            bail!(
                "{}: the first line must be `mutant: <the bug it plants>`",
                path.display()
            );
        };
        let mut must_fail: Vec<String> = Vec::new();
        let mut must_fail_on: Vec<(String, String)> = Vec::new();
        let mut crashes = None;
        for (i, line) in text
            .lines()
            .enumerate()
            .skip(1)
            .take_while(|(_, l)| !l.trim().is_empty() && !l.starts_with("diff --git "))
        {
            if let Some(rest) = line.strip_prefix(MUST_FAIL) {
                for word in rest.split_whitespace() {
                    match word.split_once('@') {
                        Some((case, arch)) => {
                            crate::cell::arch::by_name(arch).with_context(|| {
                                format!("{}:{}: `{word}`", path.display(), i + 1)
                            })?;
                            must_fail_on.push((case.to_string(), arch.to_string()));
                        }
                        None => must_fail.push(word.to_string()),
                    }
                }
            } else if let Some(rest) = line.strip_prefix(CRASHES) {
                let excerpt = rest.trim();
                if excerpt.is_empty() {
                    bail!(
                        "{}:{}: `{CRASHES}` needs the text the kernel's panic shows",
                        path.display(),
                        i + 1
                    );
                }
                crashes = Some(excerpt.to_string());
            } else {
                bail!(
                    "{}:{}: unknown header line {line:?} (the header is `mutant:`, `{MUST_FAIL}` and `{CRASHES}` lines, then a blank line)",
                    path.display(),
                    i + 1
                );
            }
        }
        if must_fail.is_empty() && must_fail_on.is_empty() {
            bail!(
                "{}: no `{MUST_FAIL} PROBE/CASE ...` line: name the cases this mutant is about (each must fail on it with its own count line; a mutant caught by whatever case fails proves nothing)",
                path.display()
            );
        }
        for c in must_fail.iter().chain(must_fail_on.iter().map(|(c, _)| c)) {
            if !candidates.contains(c) {
                let probe = c.split('/').next().unwrap_or("");
                let same_probe: Vec<&str> = candidates
                    .iter()
                    .filter(|k| k.split('/').next() == Some(probe))
                    .map(String::as_str)
                    .collect();
                bail!(
                    "{}: `{MUST_FAIL}` names {c:?}, which is no case a mutant can be caught by (renamed or removed?); {}",
                    path.display(),
                    if same_probe.is_empty() {
                        format!("no probe {probe:?} has such cases; the candidates are the probe registry's counted cases (ksh_proto::PROBES) and build/generators-agree, build/link-stable")
                    } else {
                        format!("the cases of {probe} are: {}", same_probe.join(", "))
                    }
                );
            }
        }
        let build_kernel = {
            let (p, c) = crate::cell::BUILD_CASE;
            format!("{p}/{c}")
        };
        if must_fail.contains(&build_kernel) && must_fail.len() > 1 {
            bail!(
                "{}: `{MUST_FAIL}` names {build_kernel} with other cases: a mutant that does not build can show no other case",
                path.display()
            );
        }
        if !text.contains("\ndiff --git ") {
            bail!("{}: no `diff --git` section", path.display());
        }
        out.push(Mutant {
            name: path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            description: description.to_string(),
            must_fail,
            must_fail_on,
            crashes,
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What the judge needs of a mutant on one arch (its verdict is the
/// judge's, `results::judge::mutant`): its name, the cases that must fail
/// there, whether the build alone decides them, and the declared crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutantRule {
    pub name: String,
    /// [`Mutant::cases_on`] the arch.
    pub cases: Vec<String>,
    /// [`Mutant::is_build_mutant`].
    pub build_mutant: bool,
    /// [`Mutant::crashes`].
    pub crashes: Option<String>,
}

impl Mutant {
    /// The rule this mutant is judged by on `arch`.
    pub fn rule(&self, arch: &str) -> MutantRule {
        MutantRule {
            name: self.name.clone(),
            cases: self.cases_on(arch),
            build_mutant: self.is_build_mutant(),
            crashes: self.crashes.clone(),
        }
    }
}

/// Set while this process holds a source tree for a mutant ([`hold_tree`]):
/// its own builds of that tree then take no shared lock (flock would make
/// them wait for the process itself).
static HOLDING_TREE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The lock a harness-owned source tree is built under: shared by builds
/// ([`building_tree`]), exclusive while a mutant is applied to it, so a
/// build of another cell from the same tree (`cargo xtask test --arch
/// arm64` beside `cargo xtask mutants`) never compiles a mutant.
fn tree_lock(tree: &Path) -> PathBuf {
    tree.with_extension("lock")
}

/// Holds `tree` exclusively until the guard drops: apply, build, test and
/// revert a mutant under it.
pub struct TreeHold {
    _lock: crate::layout::DirLock,
}

impl Drop for TreeHold {
    fn drop(&mut self) {
        HOLDING_TREE.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn hold_tree(tree: &Path) -> Result<TreeHold> {
    let lock = crate::layout::lock(&tree_lock(tree))?;
    HOLDING_TREE.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(TreeHold { _lock: lock })
}

/// The shared lock a build of `tree` holds while `make` runs (none when
/// this process holds the tree for a mutant).
pub fn building_tree(tree: &Path) -> Result<Option<crate::layout::DirLock>> {
    if HOLDING_TREE.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    crate::layout::lock_shared(&tree_lock(tree)).map(Some)
}

/// Applies `m` to `tree`, which must have no mutant applied.
pub fn apply(tree: &Path, m: &Mutant) -> Result<()> {
    let marker = tree.join(APPLIED_MARKER);
    if marker.exists() {
        bail!(
            "{} already has a mutant applied ({})",
            tree.display(),
            marker.display()
        );
    }
    let patch = fs::read(&m.path)?;
    // The marker first: an interruption between the two leaves a marker
    // whose revert fails, and the tree is then re-unpacked.
    fs::write(&marker, &patch)?;
    let out = crate::kernel::series::git_apply(tree, &[], &patch)?;
    if !out.status.success() {
        let _ = fs::remove_file(&marker);
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "mutant {} ({}) does not apply to {}: {}\ngit apply said:\n{}\nreproduce: cd {} && git apply --check -v {}",
            m.name,
            m.path.display(),
            tree.display(),
            crate::kernel::series::rejected_hunks(&String::from_utf8_lossy(&patch), &stderr)
                .join("; "),
            stderr.trim(),
            tree.display(),
            m.path.display()
        );
    }
    Ok(())
}

/// Reverts whatever mutant `tree` records. Returns whether one was applied.
pub fn revert(tree: &Path) -> Result<bool> {
    let marker = tree.join(APPLIED_MARKER);
    let Ok(patch) = fs::read(&marker) else {
        return Ok(false);
    };
    let out = crate::kernel::series::git_apply(tree, &["-R"], &patch)?;
    if !out.status.success() {
        bail!(
            "cannot revert the mutant recorded in {}:\n{}",
            marker.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::remove_file(&marker)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_mutants_load_with_descriptions() {
        for kernel in Kernel::all() {
            let ms = load_for(kernel).unwrap();
            assert!(ms.len() >= 10, "{}: {} mutants", dir_name(kernel), ms.len());
            assert!(ms.iter().all(|m| !m.description.is_empty()));
            assert!(
                ms.iter().all(|m| m.path.starts_with(dir(kernel))),
                "{}",
                dir_name(kernel)
            );
            let bt = ms.iter().find(|m| m.name == "backtrace-pB-offset").unwrap();
            assert!(bt
                .must_fail
                .contains(&"backtrace/end-of-function-frame".to_string()));
        }
        assert_eq!(
            dir(Kernel::parse("7.3").unwrap()),
            crate::layout::project_root().join("patches/7.3/mutants")
        );
        assert_eq!(dir_name(Kernel::V6_12), "patches/6.12/mutants/");
    }

    /// Each kernel line plants the same bugs, named by the same cases, so
    /// a case proven sensitive on one line is on the others: a mutant
    /// ported to a new line keeps its name and header (the sensitivity map
    /// lists it once with its lines), and one left out (no meaning on that
    /// line's code) is named, with why, in the `README.md` of that line's
    /// mutants dir, never dropped silently. (A line may add mutants of
    /// its own code.)
    #[test]
    fn every_kernel_line_has_the_same_mutants_and_cases() {
        type Header = (Vec<String>, Vec<(String, String)>, Option<String>);
        let of = |k: Kernel| -> std::collections::BTreeMap<String, Header> {
            load_for(k)
                .unwrap()
                .into_iter()
                .map(|m| (m.name, (m.must_fail, m.must_fail_on, m.crashes)))
                .collect()
        };
        let reference = of(Kernel::V6_12);
        for kernel in Kernel::all() {
            let ms = of(kernel);
            let readme = fs::read_to_string(dir(kernel).join("README.md")).unwrap_or_default();
            for (name, header) in &reference {
                match ms.get(name) {
                    Some(h) => assert_eq!(
                        h,
                        header,
                        "{}{name}.patch: its header is not 6.12's",
                        dir_name(kernel)
                    ),
                    None => assert!(
                        readme.contains(&format!("`{name}`")),
                        "{} has no {name}.patch and its README.md does not say why",
                        dir_name(kernel)
                    ),
                }
            }
        }
    }

    const DIFF: &str = "diff --git a/k/a.c b/k/a.c\n--- a/k/a.c\n+++ b/k/a.c\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n";

    /// Loads one mutant file with `header` (its lines before the diff).
    fn load_one(header: &str) -> Result<Mutant> {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("m.patch"), format!("{header}\n\n{DIFF}")).unwrap();
        load(d.path()).map(|mut v| v.remove(0))
    }

    #[test]
    fn every_repository_mutant_names_cases_that_exist() {
        // `load` refuses a mutant without `must-fail:` or naming an
        // unknown case: every file of every kernel line's dir loads.
        for kernel in Kernel::all() {
            let ms = load_for(kernel).unwrap();
            assert!(ms
                .iter()
                .all(|m| !m.must_fail.is_empty() || !m.must_fail_on.is_empty()));
        }
    }

    #[test]
    fn header_lines_are_parsed_and_checked() {
        let m = load_one(
            "mutant: x\nmust-fail: sizes/start-size\nmust-fail: build/generators-agree\ncrashes: Oops: general protection fault",
        )
        .unwrap();
        assert_eq!(m.must_fail, ["sizes/start-size", "build/generators-agree"]);
        assert_eq!(m.crashes.as_deref(), Some("Oops: general protection fault"));
        assert!(!m.is_build_mutant());
        assert!(load_one("mutant: x\nmust-fail: build/generators-agree")
            .unwrap()
            .is_build_mutant());

        let e = format!("{:#}", load_one("mutant: x").unwrap_err());
        assert!(e.contains("m.patch") && e.contains("no `must-fail:"), "{e}");
        let e = format!(
            "{:#}",
            load_one("mutant: x\nmust-fail: sizes/start-sz").unwrap_err()
        );
        assert!(
            e.contains("m.patch") && e.contains("\"sizes/start-sz\"") && e.contains("start-size"),
            "{e}"
        );
        // A case for one arch only.
        let m =
            load_one("mutant: x\nmust-fail: sizes/start-size backtrace/dump-stack@x86_64").unwrap();
        assert_eq!(
            m.cases_on("x86_64"),
            ["sizes/start-size", "backtrace/dump-stack"]
        );
        assert_eq!(m.cases_on("arm64"), ["sizes/start-size"]);
        let e = format!(
            "{:#}",
            load_one("mutant: x\nmust-fail: backtrace/dump-stack@riscv").unwrap_err()
        );
        assert!(e.contains("dump-stack@riscv"), "{e}");
        // build/kernel only alone (a mutant that does not compile).
        assert!(load_one("mutant: x\nmust-fail: build/kernel")
            .unwrap()
            .is_build_mutant());
        let e = format!(
            "{:#}",
            load_one("mutant: x\nmust-fail: build/kernel sizes/start-size").unwrap_err()
        );
        assert!(e.contains("with other cases"), "{e}");
        for bad in ["boot/vm-completed", "lookup-bench/measured"] {
            let e = format!(
                "{:#}",
                load_one(&format!("mutant: x\nmust-fail: {bad}")).unwrap_err()
            );
            assert!(e.contains(bad), "{e}");
        }
        let e = format!(
            "{:#}",
            load_one("mutant: x\nmust_fail: sizes/start-size").unwrap_err()
        );
        assert!(e.contains("unknown header line"), "{e}");
    }

    #[test]
    fn a_mutant_that_no_longer_applies_names_its_hunk() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("k")).unwrap();
        fs::write(d.path().join("k/a.c"), "one\nTWO\n").unwrap();
        fs::write(
            d.path().join("m.patch"),
            format!("mutant: x\nmust-fail: sizes/start-size\n\n{DIFF}"),
        )
        .unwrap();
        let m = &load(d.path()).unwrap()[0];
        let e = format!("{:#}", apply(d.path(), m).unwrap_err());
        assert!(
            e.contains("m.patch") && e.contains("hunk #1 of k/a.c at line 1"),
            "{e}"
        );
        assert!(!d.path().join(APPLIED_MARKER).exists());
    }

    #[test]
    fn apply_and_revert_round_trip() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("k")).unwrap();
        fs::write(d.path().join("k/a.c"), "one\ntwo\n").unwrap();
        let p = d.path().join("m.patch");
        fs::write(
            &p,
            "mutant: two becomes three\nmust-fail: sizes/start-size\n\ndiff --git a/k/a.c b/k/a.c\n--- a/k/a.c\n+++ b/k/a.c\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n",
        )
        .unwrap();
        let m = &load(d.path()).unwrap()[0];
        apply(d.path(), m).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("k/a.c")).unwrap(),
            "one\nthree\n"
        );
        assert!(apply(d.path(), m).is_err(), "one mutant at a time");
        assert!(revert(d.path()).unwrap());
        assert_eq!(
            fs::read_to_string(d.path().join("k/a.c")).unwrap(),
            "one\ntwo\n"
        );
        assert!(!revert(d.path()).unwrap());
    }
}
