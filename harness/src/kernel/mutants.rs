//! Known-bad kernels: small patches on top of the series
//! (`patches/6.12/mutants/*.patch`), each planting one bug that some probe
//! must catch. `cargo xtask mutants` applies them one at a time to the
//! patched source tree, builds incrementally in the patched build dir, and
//! runs every probe.
//!
//! A mutant is applied in place, so the tree records it
//! (`.ksh-mutant.patch`): whoever prepares the tree next (an interrupted
//! mutant run, then `cargo xtask test`) reverts it first, and a build of a
//! mutant is never mistaken for the series.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The record, in the tree, of the mutant applied to it.
pub const APPLIED_MARKER: &str = ".ksh-mutant.patch";

/// One mutant: `NAME.patch`, whose first line is `mutant: what it breaks`
/// and whose optional second line, `must-fail: PROBE/CASE ...`, names the
/// cases the mutant is about: each of them has to fail on it, not just
/// some case. That is how a case shows, in CI, that it fails on a kernel
/// with its bug.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub name: String,
    pub description: String,
    /// Cases (`probe/case`, without the cell) that must fail.
    pub must_fail: Vec<String>,
    pub path: PathBuf,
}

/// The header line listing the cases a mutant must fail.
const MUST_FAIL: &str = "must-fail: ";

/// Every mutant in `dir`, by name.
pub fn load(dir: &Path) -> Result<Vec<Mutant>> {
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
        let must_fail: Vec<String> = text
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix(MUST_FAIL))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        if let Some(bad) = must_fail.iter().find(|c| c.split('/').count() != 2) {
            bail!(
                "{}: `{MUST_FAIL}` takes PROBE/CASE names, not {bad:?}",
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
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
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
        bail!(
            "mutant {} does not apply to {}:\n{}\nreproduce: cd {} && git apply --check {}",
            m.name,
            tree.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
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
        let ms = load(&crate::layout::patches_dir("6.12").join("mutants")).unwrap();
        assert!(ms.len() >= 10, "{} mutants", ms.len());
        assert!(ms.iter().all(|m| !m.description.is_empty()));
        let bt = ms.iter().find(|m| m.name == "backtrace-pB-offset").unwrap();
        assert!(bt
            .must_fail
            .contains(&"backtrace/end-of-function-frame".to_string()));
    }

    #[test]
    fn apply_and_revert_round_trip() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("k")).unwrap();
        fs::write(d.path().join("k/a.c"), "one\ntwo\n").unwrap();
        let p = d.path().join("m.patch");
        fs::write(
            &p,
            "mutant: two becomes three\n\ndiff --git a/k/a.c b/k/a.c\n--- a/k/a.c\n+++ b/k/a.c\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n",
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
