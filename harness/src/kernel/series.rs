//! The kernel patch series (`patches/<version>/`): parsing, fingerprints,
//! applying it to a kernel tree, and keeping the Rust kallsyms generator
//! that one of its patches adds in sync with the `kallsyms-gen` crate.
//!
//! The series is written by git, never edited as text: [`regenerate`]
//! applies it with `git am` in a scratch repository made from the pristine
//! files it touches, puts the crate's sources into the generator patch's
//! commit (`git commit --amend`), applies the later patches on top and
//! writes every patch again with `git format-patch`. [`generator_drift`]
//! is the quick check that the generator inside the series is the crate.
//!
//! # The `series` file
//!
//! One patch file name per line, applied in that order. `#` starts a
//! comment (at the start of a line or after whitespace); blank lines are
//! ignored. A file name may be followed by the word `baseline`: such a
//! patch is also applied to baseline (unpatched-for-comparison) builds,
//! e.g. a test fixture both variants need.
//!
//! ```text
//! # fixture both variants need
//! 0001-kallsyms-add-weak-function-test-fixture.patch baseline
//! 0002-kallsyms-build-the-rust-generator.patch
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;
use sha2::{Digest, Sha256};

/// The name of the file listing the patches, inside the series directory.
pub const SERIES_FILE: &str = "series";

/// The directory (inside the kernel tree) of the Rust kallsyms generator
/// that the series adds: a Kbuild Rust host program whose `*.rs` files are
/// the `kallsyms-gen` crate's `src/*.rs` verbatim (see [`GENERATOR_ROOT`]).
pub const GENERATOR_DIR: &str = "scripts/kallsyms-rs";

/// The crate root inside [`GENERATOR_DIR`] (Kbuild names a host program's
/// crate root after the program); it is the crate's `src/main.rs`. Every
/// other module file keeps its name.
pub const GENERATOR_ROOT: &str = "kallsyms-rs.rs";

/// How the series' patches are written (`git format-patch` options besides
/// the range): zeroed `From` hashes, no signature, 9-digit blob ids.
pub const FORMAT_PATCH_ARGS: [&str; 3] = ["--zero-commit", "--no-signature", "--abbrev=9"];

/// Which kernel a build is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The whole series.
    Patched,
    /// Only the patches marked `baseline`.
    Baseline,
}

/// One patch of the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name as written in the series file.
    pub file: String,
    /// Absolute (or series-dir-relative, as given to [`Series::load`])
    /// path of the patch file.
    pub path: PathBuf,
    /// Also applied to baseline builds.
    pub baseline: bool,
    /// 1-based line of the series file that names it.
    pub line: usize,
}

/// A loaded patch series.
#[derive(Debug, Clone)]
pub struct Series {
    /// The directory holding `series` and the patches.
    pub dir: PathBuf,
    /// The patches, in application order.
    pub entries: Vec<Entry>,
}

impl Series {
    /// Reads `dir/series`. Errors name the series file and line.
    pub fn load(dir: &Path) -> Result<Series> {
        let series_file = dir.join(SERIES_FILE);
        let text = std::fs::read_to_string(&series_file)
            .with_context(|| format!("reading series file {}", series_file.display()))?;
        let entries = parse_series(&text, dir, &series_file)?;
        Ok(Series {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// The path of the `series` file.
    pub fn series_file(&self) -> PathBuf {
        self.dir.join(SERIES_FILE)
    }

    /// The patches that apply to `variant`, in order.
    pub fn patches_for(&self, variant: Variant) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| variant == Variant::Patched || e.baseline)
            .collect()
    }

    /// SHA-256 (lower-case hex) over the contents of the patches that
    /// apply to `variant`, in order. Each patch contributes its length as
    /// a little-endian u64 followed by its bytes, so moving text from one
    /// patch to the next changes the fingerprint. File names and the
    /// series file's comments do not take part: a tree built from the
    /// same patch contents is the same tree.
    pub fn fingerprint(&self, variant: Variant) -> Result<String> {
        let mut h = Sha256::new();
        for e in self.patches_for(variant) {
            let data =
                std::fs::read(&e.path).with_context(|| format!("reading {}", e.path.display()))?;
            h.update((data.len() as u64).to_le_bytes());
            h.update(&data);
        }
        Ok(hex(&h.finalize()))
    }

    /// Every path (relative to the tree root) that the patches of
    /// `variant` read or write.
    pub fn touched_paths(&self, variant: Variant) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for e in self.patches_for(variant) {
            let text = read_patch(e)?;
            for f in parse_patch_files(&text) {
                out.extend(f.old_path);
                out.extend(f.new_path);
            }
        }
        Ok(out)
    }

    /// Applies the patches of `variant` to the tree at `tree` (which need
    /// not be a git repository).
    ///
    /// Every patch is checked first with `git apply --check`, on top of
    /// the patches before it (the prefix is fed to one `git apply` on
    /// stdin, so nothing is written). Only when all of them apply is the
    /// series written, in one `git apply` of the whole sequence. When a
    /// patch does not apply, the error names the patch file, the rejected
    /// hunk and the command that reproduces it, and the tree is left
    /// untouched.
    pub fn apply(&self, tree: &Path, variant: Variant) -> Result<()> {
        let patches = self.patches_for(variant);
        if patches.is_empty() {
            return Ok(());
        }
        let tree = tree
            .canonicalize()
            .with_context(|| format!("kernel tree {}", tree.display()))?;
        let mut texts = Vec::new();
        for e in &patches {
            texts.push(
                std::fs::read(&e.path).with_context(|| format!("reading {}", e.path.display()))?,
            );
        }
        for k in 0..patches.len() {
            let input: Vec<u8> = texts[..=k].concat();
            let out = git_apply(&tree, &["--check", "-v"], &input)?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(apply_error(&tree, &patches[..=k], &stderr));
            }
        }
        let input: Vec<u8> = texts.concat();
        let out = git_apply(&tree, &[], &input)?;
        if !out.status.success() {
            bail!(
                "git apply of the checked series {} failed in {}:\n{}",
                self.series_file().display(),
                tree.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The entry of the one patch that adds (and changes) the generator's
    /// sources, the `*.rs` files under [`GENERATOR_DIR`]. No other patch
    /// may touch them: the crate is their only source, and
    /// [`regenerate`] puts it into this patch.
    pub fn generator_patch(&self) -> Result<&Entry> {
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            let text = read_patch(e)?;
            let touches = parse_patch_files(&text).iter().any(|f| {
                [&f.old_path, &f.new_path]
                    .into_iter()
                    .flatten()
                    .any(|p| is_generator_source(p))
            });
            if !touches {
                continue;
            }
            if let Some(prev) = found.replace(e) {
                bail!(
                    "both {} and {} change {GENERATOR_DIR}/*.rs (series file {}): only the \
                     patch that adds the generator may, with the kallsyms-gen crate's sources \
                     (`cargo xtask sync-series` puts them there)",
                    prev.file,
                    e.file,
                    self.series_file().display()
                );
            }
        }
        found.ok_or_else(|| {
            anyhow!(
                "no patch in {} adds {GENERATOR_DIR}/{GENERATOR_ROOT}",
                self.series_file().display()
            )
        })
    }
}

/// A generator source inside the kernel tree: `GENERATOR_DIR/*.rs`.
fn is_generator_source(path: &str) -> bool {
    path.strip_prefix(GENERATOR_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| name.ends_with(".rs"))
}

fn read_patch(e: &Entry) -> Result<String> {
    std::fs::read_to_string(&e.path).with_context(|| format!("reading patch {}", e.path.display()))
}

fn parse_series(text: &str, dir: &Path, series_file: &Path) -> Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let at = || format!("{}:{line}", series_file.display());
        let mut words = Vec::new();
        for w in raw.split_whitespace() {
            if w.starts_with('#') {
                break;
            }
            words.push(w);
        }
        let Some((&file, flags)) = words.split_first() else {
            continue;
        };
        let mut baseline = false;
        for &f in flags {
            match f {
                "baseline" if !baseline => baseline = true,
                "baseline" => bail!("{}: `baseline` given twice", at()),
                other => bail!(
                    "{}: unknown word `{other}` after {file} (only `baseline` is allowed)",
                    at()
                ),
            }
        }
        if file.contains('/') || file == "." || file == ".." || file == SERIES_FILE {
            bail!(
                "{}: `{file}` is not a patch file name in the series directory",
                at()
            );
        }
        if let Some(prev) = entries.iter().find(|e| e.file == file) {
            bail!("{}: {file} is already listed on line {}", at(), prev.line);
        }
        let path = dir.join(file);
        if !path.is_file() {
            bail!("{}: patch file {} does not exist", at(), path.display());
        }
        entries.push(Entry {
            file: file.to_string(),
            path,
            baseline,
            line,
        });
    }
    Ok(entries)
}

pub(crate) fn git_apply(tree: &Path, args: &[&str], input: &[u8]) -> Result<std::process::Output> {
    let mut cmd = Command::new("git");
    cmd.arg("apply").args(args).current_dir(tree);
    // Never let git discover a repository *above* the tree: inside one,
    // `git apply` would take paths relative to that repository's root.
    if let Some(parent) = tree.parent() {
        cmd.env("GIT_CEILING_DIRECTORIES", parent);
    }
    crate::process::output_with_input(&mut cmd, input)
        .context("running git apply (is git installed?)")
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What `git apply`'s `stderr` says about the patch `text`: each rejected
/// hunk by number, file, line and header (`hunk #2 of kernel/kallsyms.c at
/// line 431 (@@ ...) rejected`), or the file-level reason.
pub(crate) fn rejected_hunks(text: &str, stderr: &str) -> Vec<String> {
    let files = parse_patch_files(text);
    let mut what = Vec::new();
    let failed = Regex::new(r"(?m)^error: patch failed: (.+):(\d+)$").unwrap();
    for c in failed.captures_iter(stderr) {
        let file = &c[1];
        let line: u64 = c[2].parse().unwrap_or(0);
        let hunk = files
            .iter()
            .filter(|f| f.old_path.as_deref() == Some(file) || f.new_path.as_deref() == Some(file))
            .flat_map(|f| f.hunks.iter())
            .enumerate()
            .find(|(_, h)| h.old_start == line);
        match hunk {
            Some((n, h)) => what.push(format!(
                "hunk #{} of {file} at line {line} ({}) rejected",
                n + 1,
                h.header
            )),
            None => what.push(format!("hunk of {file} at line {line} rejected")),
        }
    }
    let other = Regex::new(
        r"(?m)^error: (.+): (already exists in working directory|No such file or directory|does not exist in index|does not match index|wrong type|patch does not apply)$",
    )
    .unwrap();
    for c in other.captures_iter(stderr) {
        if &c[2] == "patch does not apply" && !what.is_empty() {
            continue;
        }
        what.push(format!("{}: {}", &c[1], &c[2]));
    }
    if what.is_empty() {
        what.push("git apply rejected it".to_string());
    }
    what
}

/// Builds the error for the last patch of `prefix` not applying.
fn apply_error(tree: &Path, prefix: &[&Entry], stderr: &str) -> anyhow::Error {
    let bad = prefix.last().expect("non-empty prefix");
    let text = std::fs::read_to_string(&bad.path).unwrap_or_default();
    let what = rejected_hunks(&text, stderr);
    let patch_files: Vec<String> = prefix
        .iter()
        .map(|e| shell_quote(&e.path.display().to_string()))
        .collect();
    let repro = format!(
        "cd {} && cat {} | git apply --check -v",
        shell_quote(&tree.display().to_string()),
        patch_files.join(" ")
    );
    let mut msg = format!(
        "patch {} (series line {}) does not apply to {}",
        bad.path.display(),
        bad.line,
        tree.display()
    );
    if prefix.len() > 1 {
        let _ = write!(
            msg,
            " on top of the {} patch(es) before it",
            prefix.len() - 1
        );
    }
    let _ = write!(msg, ": {}", what.join("; "));
    let _ = write!(msg, "\nthe tree was left untouched (nothing applied)");
    let _ = write!(msg, "\nreproduce with: {repro}");
    let _ = write!(msg, "\ngit apply said:\n{}", stderr.trim_end());
    anyhow!(msg)
}

/// One `diff --git` section of a patch.
#[derive(Debug, Clone, Default)]
struct FilePatch {
    old_path: Option<String>,
    new_path: Option<String>,
    new_file: bool,
    hunks: Vec<Hunk>,
}

#[derive(Debug, Clone)]
struct Hunk {
    header: String,
    old_start: u64,
}

fn strip_prefix_path(p: &str, prefix: &str) -> Option<String> {
    let p = p.split('\t').next().unwrap_or(p);
    if p == "/dev/null" {
        return None;
    }
    Some(p.strip_prefix(prefix).unwrap_or(p).to_string())
}

fn parse_patch_files(text: &str) -> Vec<FilePatch> {
    let hunk_re = Regex::new(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@").unwrap();
    let mut out: Vec<FilePatch> = Vec::new();
    let mut cur: Option<FilePatch> = None;
    let lines = text.lines();
    // Lines left in the current hunk (old, new); body lines are only
    // consumed while a hunk is open, so mail text between patches is
    // never taken for a header.
    let mut left = (0u64, 0u64);
    for l in lines {
        if left != (0, 0) {
            match l.as_bytes().first() {
                Some(b' ') | None => {
                    left.0 = left.0.saturating_sub(1);
                    left.1 = left.1.saturating_sub(1);
                }
                Some(b'-') => left.0 = left.0.saturating_sub(1),
                Some(b'+') => left.1 = left.1.saturating_sub(1),
                Some(b'\\') => {}
                _ => left = (0, 0),
            }
            continue;
        }
        if let Some(rest) = l.strip_prefix("diff --git ") {
            out.extend(cur.take());
            let mut f = FilePatch::default();
            // `a/X b/Y`: kernel paths have no spaces, so split at " b/".
            if let Some((a, b)) = rest.split_once(" b/") {
                f.old_path = strip_prefix_path(a, "a/");
                f.new_path = Some(b.to_string());
            }
            cur = Some(f);
        } else if let Some(f) = cur.as_mut() {
            if l.starts_with("new file mode") {
                f.new_file = true;
            } else if let Some(p) = l.strip_prefix("--- ") {
                f.old_path = strip_prefix_path(p, "a/");
            } else if let Some(p) = l.strip_prefix("+++ ") {
                f.new_path = strip_prefix_path(p, "b/");
            } else if let Some(p) = l
                .strip_prefix("rename from ")
                .or_else(|| l.strip_prefix("copy from "))
            {
                f.old_path = Some(p.to_string());
            } else if let Some(c) = hunk_re.captures(l) {
                let n = |i: usize| c.get(i).map_or(1, |m| m.as_str().parse().unwrap_or(0));
                f.hunks.push(Hunk {
                    header: l.to_string(),
                    old_start: c[1].parse().unwrap_or(0),
                });
                left = (n(2), n(4));
            } else if l == "-- " {
                // mail signature: end of this patch
                out.extend(cur.take());
            }
        }
    }
    out.extend(cur);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The generator's sources in the crate (`crate_src`, its `src/` dir): the
/// file name each has in [`GENERATOR_DIR`] (`main.rs` is [`GENERATOR_ROOT`])
/// and its path. Modules must be flat files next to `main.rs`.
pub fn generator_files(crate_src: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let dir = std::fs::read_dir(crate_src)
        .with_context(|| format!("reading the generator crate's {}", crate_src.display()))?;
    for e in dir {
        let path = e?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            bail!(
                "{} is a directory: the generator ships as the flat {GENERATOR_DIR}/*.rs, \
                 so its modules must be files next to main.rs",
                path.display()
            );
        }
        if !name.ends_with(".rs") {
            continue;
        }
        let shipped = if name == "main.rs" {
            GENERATOR_ROOT
        } else if name == GENERATOR_ROOT {
            bail!(
                "{} would be shipped as {GENERATOR_DIR}/{GENERATOR_ROOT}, the crate root \
                 (which is main.rs); rename it",
                path.display()
            );
        } else {
            name
        };
        out.insert(shipped.to_string(), path);
    }
    if !out.contains_key(GENERATOR_ROOT) {
        bail!("no main.rs in {}", crate_src.display());
    }
    Ok(out)
}

/// The generator's sources as `patch` adds them: file name in
/// [`GENERATOR_DIR`] → content. `git apply --include` writes just those
/// files into an empty directory, so no kernel tree is needed.
fn shipped_generator(patch: &Entry) -> Result<BTreeMap<String, Vec<u8>>> {
    let scratch = tempfile::Builder::new()
        .prefix("ksh-generator-")
        .tempdir()
        .context("creating a temporary directory")?;
    let text =
        std::fs::read(&patch.path).with_context(|| format!("reading {}", patch.path.display()))?;
    let include = format!("--include={GENERATOR_DIR}/*.rs");
    let out = git_apply(scratch.path(), &[include.as_str()], &text)?;
    if !out.status.success() {
        bail!(
            "git apply {include} of {} into an empty directory failed (does it add the \
             generator as new files?):\n{}",
            patch.path.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let mut files = BTreeMap::new();
    let dir = scratch.path().join(GENERATOR_DIR);
    if dir.is_dir() {
        for e in std::fs::read_dir(&dir)? {
            let path = e?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !path.is_file() {
                bail!(
                    "{} adds {GENERATOR_DIR}/{name}/, but the generator's modules are flat files",
                    patch.path.display()
                );
            }
            files.insert(name.into_owned(), std::fs::read(&path)?);
        }
    }
    Ok(files)
}

/// Where two versions of a file first differ, for a drift message.
fn first_difference(patch: &[u8], krate: &[u8]) -> String {
    let a: Vec<&[u8]> = patch.split_inclusive(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = krate.split_inclusive(|&b| b == b'\n').collect();
    let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let show = |l: Option<&&[u8]>| match l {
        Some(l) => format!("{:?}", String::from_utf8_lossy(l).trim_end_matches('\n')),
        None => "end of file".to_string(),
    };
    format!(
        "first difference at line {} (patch {} lines, crate {}):\n      patch: {}\n      crate: {}",
        same + 1,
        a.len(),
        b.len(),
        show(a.get(same)),
        show(b.get(same))
    )
}

/// Checks that the generator sources the series adds (`GENERATOR_DIR/*.rs`
/// in its generator patch) are exactly the crate's (`crate_src`: the
/// `kallsyms-gen/src` dir; see [`generator_files`]). The error names every
/// file that differs, is missing or is extra, and the command that fixes
/// it. Needs no kernel source.
pub fn generator_drift(series_dir: &Path, crate_src: &Path) -> Result<()> {
    let series = Series::load(series_dir)?;
    let entry = series.generator_patch()?;
    let shipped = shipped_generator(entry)?;
    let krate = generator_files(crate_src)?;
    let mut problems = Vec::new();
    for (name, path) in &krate {
        let content = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match shipped.get(name) {
            None => problems.push(format!(
                "{} is not in the patch (as {GENERATOR_DIR}/{name})",
                path.display()
            )),
            Some(c) if *c != content => problems.push(format!(
                "{GENERATOR_DIR}/{name} differs from {}: {}",
                path.display(),
                first_difference(c, &content)
            )),
            Some(_) => {}
        }
    }
    for name in shipped.keys().filter(|n| !krate.contains_key(*n)) {
        problems.push(format!(
            "{GENERATOR_DIR}/{name} is in the patch, but {} has no such file",
            crate_src.display()
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the generator in {} has drifted from the crate ({}):\n  - {}\n\
         regenerate the series from the crate with `cargo xtask sync-series`, \
         then review (git diff patches/) and commit it",
        entry.path.display(),
        crate_src.display(),
        problems.join("\n  - ")
    )
}

/// Where [`regenerate`] gets the unpatched versions of the files the series
/// changes.
#[derive(Debug, Clone, Copy)]
pub enum Pristine<'a> {
    /// A kernel source tarball (`linux-source-6.12.tar.xz`) whose members
    /// sit in one top directory.
    Tarball(&'a Path),
    /// An unpacked, unpatched kernel tree.
    Tree(&'a Path),
}

impl Pristine<'_> {
    /// Puts the pristine version of every path in `paths` into `to`.
    fn extract(&self, paths: &BTreeSet<String>, to: &Path) -> Result<()> {
        match *self {
            Pristine::Tree(tree) => {
                for p in paths {
                    let from = tree.join(p);
                    let dest = to.join(p);
                    std::fs::create_dir_all(dest.parent().unwrap_or(to))?;
                    std::fs::copy(&from, &dest).with_context(|| {
                        format!("copying {} (the series changes it)", from.display())
                    })?;
                }
                Ok(())
            }
            Pristine::Tarball(tarball) => {
                if paths.is_empty() {
                    return Ok(());
                }
                std::fs::create_dir_all(to)?;
                let out = Command::new("tar")
                    .arg("-xJf")
                    .arg(tarball)
                    .args(["--strip-components=1", "-C"])
                    .arg(to)
                    // Members are under one top directory (linux-source-6.12/).
                    .args(["--wildcards", "--no-wildcards-match-slash"])
                    .args(paths.iter().map(|p| format!("*/{p}")))
                    .output()
                    .context("running tar")?;
                if !out.status.success() {
                    bail!(
                        "extracting the {} file(s) the series changes from {} failed ({}):\n{}",
                        paths.len(),
                        tarball.display(),
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim_end()
                    );
                }
                Ok(())
            }
        }
    }
}

/// Runs git in the scratch repository `repo` of [`regenerate`], isolated
/// from the user's and the system's git configuration (which could change
/// what `format-patch` writes) and from any repository around it.
fn scratch_git(repo: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CEILING_DIRECTORIES", repo.parent().unwrap_or(repo))
        .env("GIT_AUTHOR_NAME", "ksh")
        .env("GIT_AUTHOR_EMAIL", "ksh@localhost")
        .env("GIT_COMMITTER_NAME", "ksh")
        .env("GIT_COMMITTER_EMAIL", "ksh@localhost")
        .env("LC_ALL", "C");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running git {} (is git installed?)", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed in {} ({}):\n{}{}",
            args.join(" "),
            repo.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One patch of the series as [`regenerate`] writes it.
#[derive(Debug, Clone)]
pub struct RegeneratedPatch {
    /// The series entry (its file name and path are kept).
    pub entry: Entry,
    /// The patch text `git format-patch` wrote.
    pub text: Vec<u8>,
}

impl RegeneratedPatch {
    /// Whether the patch file on disk differs from the regenerated text.
    pub fn changed(&self) -> Result<bool> {
        let old = std::fs::read(&self.entry.path)
            .with_context(|| format!("reading {}", self.entry.path.display()))?;
        Ok(old != self.text)
    }
}

/// The series as git writes it with the crate's generator sources in the
/// generator patch: in a scratch repository holding the `pristine` version
/// of every file the series changes, each patch is applied with `git am`
/// (which keeps its author, date and message), the generator patch's
/// commit gets `crate_src`'s files as `GENERATOR_DIR/*.rs`
/// (`git commit --amend`), the patches after it are applied on top, and
/// `git format-patch` with [`FORMAT_PATCH_ARGS`] writes them all again.
/// Nothing in `series_dir` is written. For an unchanged crate the result
/// is the committed series byte for byte.
pub fn regenerate(
    series_dir: &Path,
    crate_src: &Path,
    pristine: Pristine<'_>,
) -> Result<Vec<RegeneratedPatch>> {
    let series = Series::load(series_dir)?;
    let generator = series.generator_patch()?.file.clone();
    let krate = generator_files(crate_src)?;

    // The files the series changes that it does not create itself.
    let mut created = BTreeSet::new();
    let mut needed = BTreeSet::new();
    for e in &series.entries {
        for f in parse_patch_files(&read_patch(e)?) {
            if let Some(p) = f.old_path {
                if !f.new_file && !created.contains(&p) {
                    needed.insert(p);
                }
            }
            if f.new_file {
                created.extend(f.new_path);
            }
        }
    }

    let scratch = tempfile::Builder::new()
        .prefix("ksh-sync-series-")
        .tempdir()
        .context("creating a temporary directory")?;
    match rebuild_in(
        scratch.path(),
        &series,
        &generator,
        &krate,
        &needed,
        pristine,
    ) {
        Ok(patches) => Ok(patches),
        Err(e) => {
            let kept = scratch.keep();
            Err(e.context(format!(
                "regenerating the series in a scratch git repository (kept for a look: {})",
                kept.join("linux").display()
            )))
        }
    }
}

/// [`regenerate`] in the scratch directory `scratch`.
fn rebuild_in(
    scratch: &Path,
    series: &Series,
    generator: &str,
    krate: &BTreeMap<String, PathBuf>,
    needed: &BTreeSet<String>,
    pristine: Pristine<'_>,
) -> Result<Vec<RegeneratedPatch>> {
    let repo = scratch.join("linux");
    pristine.extract(needed, &repo)?;
    scratch_git(&repo, &["init", "-q"])?;
    scratch_git(&repo, &["add", "-A"])?;
    scratch_git(&repo, &["commit", "-q", "--allow-empty", "-m", "pristine"])?;
    let base = scratch_git(&repo, &["rev-parse", "HEAD"])?
        .trim()
        .to_string();

    for e in &series.entries {
        let patch = e.path.canonicalize().unwrap_or_else(|_| e.path.clone());
        scratch_git(&repo, &["am", "-q", &patch.to_string_lossy()])
            .with_context(|| format!("applying {} with git am", e.file))?;
        if e.file != generator {
            continue;
        }
        let dir = repo.join(GENERATOR_DIR);
        if dir.is_dir() {
            for old in std::fs::read_dir(&dir)? {
                let path = old?.path();
                if path.is_file() && path.extension().is_some_and(|x| x == "rs") {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        std::fs::create_dir_all(&dir)?;
        for (name, from) in krate {
            std::fs::copy(from, dir.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
        scratch_git(&repo, &["add", "-A", "--", GENERATOR_DIR])?;
        scratch_git(
            &repo,
            &["commit", "-q", "--amend", "--no-edit", "--allow-empty"],
        )?;
    }

    let out_dir = scratch.join("patches");
    let out_arg = out_dir.to_string_lossy().into_owned();
    let range = format!("{base}..HEAD");
    let mut args = vec!["format-patch", "-q", "-o", out_arg.as_str()];
    args.extend(FORMAT_PATCH_ARGS);
    args.push(range.as_str());
    scratch_git(&repo, &args)?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(&out_dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    written.sort();
    if written.len() != series.entries.len() {
        bail!(
            "git format-patch wrote {} patches for the {} of {}",
            written.len(),
            series.entries.len(),
            series.series_file().display()
        );
    }
    series
        .entries
        .iter()
        .zip(written)
        .map(|(e, path)| {
            Ok(RegeneratedPatch {
                entry: e.clone(),
                text: std::fs::read(&path)?,
            })
        })
        .collect()
}

/// `cargo xtask sync-series`: rewrites the patch files of the series that
/// [`regenerate`] writes differently. Returns the file names it rewrote.
pub fn sync_series(
    series_dir: &Path,
    crate_src: &Path,
    pristine: Pristine<'_>,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for p in regenerate(series_dir, crate_src, pristine)? {
        if p.changed()? {
            std::fs::write(&p.entry.path, &p.text)
                .with_context(|| format!("writing {}", p.entry.path.display()))?;
            changed.push(p.entry.file.clone());
        }
    }
    Ok(changed)
}

/// Checks that every patch file of the series is what [`regenerate`]
/// writes: git-made, and with the crate's generator. The error names the
/// patches that differ and the command that rewrites them.
pub fn series_is_regenerated(
    series_dir: &Path,
    crate_src: &Path,
    pristine: Pristine<'_>,
) -> Result<()> {
    let mut differ = Vec::new();
    for p in regenerate(series_dir, crate_src, pristine)? {
        if p.changed()? {
            differ.push(p.entry.path.display().to_string());
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    bail!(
        "{} patch file(s) differ from what git writes for the series with the crate's \
         generator:\n  - {}\nrewrite them with `cargo xtask sync-series`, then review \
         (git diff patches/) and commit",
        differ.len(),
        differ.join("\n  - ")
    )
}

/// The cover letter beside the patches: what `git format-patch
/// --cover-letter` writes, with its subject and blurb filled in. Not an
/// entry of `series` (it changes no file).
pub const COVER_LETTER: &str = "0000-cover-letter.patch";

/// What `git format-patch --cover-letter` leaves for a human to replace,
/// and the placeholders of our own draft.
const COVER_PLACEHOLDERS: &[&str] = &[
    "*** SUBJECT HERE ***",
    "*** BLURB HERE ***",
    "{FIGURES}",
    "{MACHINE}",
];

/// The subject of a patch file without its `[PATCH n/m]` prefix, with a
/// folded header line unfolded.
pub fn patch_subject(text: &str) -> Option<String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("Subject: "));
    let first = lines.next()?.strip_prefix("Subject: ")?;
    let mut subject = first.to_string();
    for l in lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')) {
        subject.push(' ');
        subject.push_str(l.trim());
    }
    let subject = match subject.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(subject.as_str(), |(_, s)| s),
        None => subject.as_str(),
    };
    Some(subject.trim().to_string())
}

/// Checks that `dir/0000-cover-letter.patch` belongs to the series in
/// `dir` as it is now: numbered `[PATCH 00/N]` for its N patches, no
/// placeholder left, and every patch's subject in its shortlog (compared
/// with whitespace collapsed, since the shortlog wraps long subjects). A
/// patch added, dropped or renamed since the letter was written fails.
pub fn cover_letter_is_current(series: &Series) -> Result<()> {
    let path = series.dir.join(COVER_LETTER);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the cover letter {} (write it with `git format-patch --cover-letter` from a tree with the series applied)",
            path.display()
        )
    })?;
    let mut problems = Vec::new();
    let want = format!("[PATCH 00/{:02}]", series.entries.len());
    if !text
        .lines()
        .any(|l| l.starts_with("Subject: ") && l.contains(&want))
    {
        problems.push(format!("its subject is not numbered {want}"));
    }
    for p in COVER_PLACEHOLDERS {
        if text.contains(p) {
            problems.push(format!("it still has the placeholder {p}"));
        }
    }
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for e in &series.entries {
        let patch = read_patch(e)?;
        let Some(subject) = patch_subject(&patch) else {
            problems.push(format!("{} has no Subject: line", e.file));
            continue;
        };
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        if !flat.contains(&subject) {
            problems.push(format!("its shortlog lacks {}: {subject}", e.file));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the cover letter {} does not match the series:\n  - {}",
        path.display(),
        problems.join("\n  - ")
    )
}

#[cfg(test)]
mod cover_letter_tests {
    use super::patch_subject;

    #[test]
    fn subject_unfolded_without_prefix() {
        let text = "From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 03/12] kallsyms: feed symbol sizes to scripts/kallsyms and\n link kallsyms_sizes\n\nbody\n";
        assert_eq!(
            patch_subject(text).as_deref(),
            Some("kallsyms: feed symbol sizes to scripts/kallsyms and link kallsyms_sizes")
        );
        assert_eq!(patch_subject("Subject: plain\n").as_deref(), Some("plain"));
        assert_eq!(patch_subject("no header\n"), None);
    }
}
