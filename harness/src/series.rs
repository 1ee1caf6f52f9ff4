//! The kernel patch series (`patches/<version>/`): parsing, fingerprints,
//! applying it to a kernel tree, and keeping the Rust kallsyms generator
//! that one of its patches adds in sync with the `kallsyms-gen` crate.
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

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;
use sha2::{Digest, Sha256};

/// The name of the file listing the patches, inside the series directory.
pub const SERIES_FILE: &str = "series";

/// The path (inside the kernel tree) of the Rust kallsyms generator that
/// the series adds; its content is `kallsyms-gen/src/main.rs` verbatim.
pub const GENERATOR_PATH: &str = "scripts/kallsyms.rs";

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

    /// The entry of the patch that adds [`GENERATOR_PATH`].
    pub fn generator_patch(&self) -> Result<&Entry> {
        let mut found = None;
        for e in &self.entries {
            let text = read_patch(e)?;
            if parse_patch_files(&text)
                .iter()
                .any(|f| f.new_file && f.new_path.as_deref() == Some(GENERATOR_PATH))
            {
                if let Some(prev) = found.replace(e) {
                    bail!(
                        "both {} and {} add {GENERATOR_PATH} (series file {})",
                        prev.file,
                        e.file,
                        self.series_file().display()
                    );
                }
            }
        }
        found.ok_or_else(|| {
            anyhow!(
                "no patch in {} adds {GENERATOR_PATH}",
                self.series_file().display()
            )
        })
    }
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
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .context("running git apply (is git installed?)")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().context("waiting for git apply")?;
    // A broken pipe only means git stopped reading early; its exit status
    // and stderr say why.
    let _ = writer.join();
    Ok(out)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Builds the error for the last patch of `prefix` not applying.
fn apply_error(tree: &Path, prefix: &[&Entry], stderr: &str) -> anyhow::Error {
    let bad = prefix.last().expect("non-empty prefix");
    let text = std::fs::read_to_string(&bad.path).unwrap_or_default();
    let files = parse_patch_files(&text);
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

/// Where the new-file content of [`GENERATOR_PATH`] lies in a patch text.
struct GeneratorHunk {
    /// Byte range of the `@@` header line (including its newline).
    header: std::ops::Range<usize>,
    /// Byte range of the body: the `+` lines and an optional
    /// `\ No newline at end of file` line.
    body: std::ops::Range<usize>,
    /// The file content the body describes.
    content: String,
}

fn find_generator_hunk(text: &str) -> Result<GeneratorHunk> {
    let mut pos = 0;
    let mut in_section = false;
    let mut header = None;
    for l in text.split_inclusive('\n') {
        let start = pos;
        pos += l.len();
        let bare = l.trim_end_matches('\n');
        if header.is_some() {
            if bare.starts_with('+') || bare.starts_with('\\') {
                continue;
            }
            // end of the hunk
            pos = start;
            break;
        }
        if let Some(rest) = bare.strip_prefix("diff --git ") {
            in_section = rest.ends_with(&format!(" b/{GENERATOR_PATH}"));
            continue;
        }
        if !in_section {
            continue;
        }
        if bare.starts_with("@@ ") {
            if !bare.starts_with("@@ -0,0 +1") {
                bail!("{GENERATOR_PATH} is not added as a new file (hunk `{bare}`)");
            }
            header = Some(start..pos);
        }
    }
    let Some(header) = header else {
        bail!("no hunk adding {GENERATOR_PATH}");
    };
    let body = header.end..pos.min(text.len());
    let mut content = String::new();
    for l in text[body.clone()].split_inclusive('\n') {
        if l.starts_with('\\') {
            // "\ No newline at end of file": drop the previous newline
            if content.ends_with('\n') {
                content.pop();
            }
        } else {
            content.push_str(&l[1..]);
        }
    }
    Ok(GeneratorHunk {
        header,
        body,
        content,
    })
}

/// Checks that the `scripts/kallsyms.rs` the series adds is exactly
/// `crate_main_rs` (the `kallsyms-gen` crate's `src/main.rs`).
pub fn generator_drift(series_dir: &Path, crate_main_rs: &Path) -> Result<()> {
    let series = Series::load(series_dir)?;
    let entry = series.generator_patch()?;
    let text = read_patch(entry)?;
    let hunk =
        find_generator_hunk(&text).with_context(|| format!("in {}", entry.path.display()))?;
    let krate = std::fs::read_to_string(crate_main_rs)
        .with_context(|| format!("reading {}", crate_main_rs.display()))?;
    if hunk.content == krate {
        return Ok(());
    }
    let a: Vec<&str> = hunk.content.split_inclusive('\n').collect();
    let b: Vec<&str> = krate.split_inclusive('\n').collect();
    // The differing region: what is left after the common first and last
    // lines (a change, insertion or deletion anywhere shows as one block).
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_diff, b_diff) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let range = |n: usize| match n {
        0 => format!("no lines (insertion before line {})", prefix + 1),
        1 => format!("line {}", prefix + 1),
        n => format!("lines {}-{}", prefix + 1, prefix + n),
    };
    let mut msg = format!(
        "{GENERATOR_PATH} in {} ({} lines) differs from {} ({} lines): \
         patch {} vs crate {}",
        entry.path.display(),
        a.len(),
        crate_main_rs.display(),
        b.len(),
        range(a_diff.len()),
        range(b_diff.len()),
    );
    let show = |msg: &mut String, side: &str, lines: &[&str]| {
        for (i, l) in lines.iter().take(3).enumerate() {
            let _ = write!(
                msg,
                "\n  {side} line {}: {:?}",
                prefix + i + 1,
                l.trim_end_matches('\n')
            );
        }
        if lines.len() > 3 {
            let _ = write!(msg, "\n  {side} ... {} more line(s)", lines.len() - 3);
        }
    };
    show(&mut msg, "patch", a_diff);
    show(&mut msg, "crate", b_diff);
    let _ = write!(
        msg,
        "\nresync the patch from the crate with `cargo xtask sync-series` \
         (harness::series::sync_generator), then review and commit it"
    );
    bail!(msg)
}

/// Rewrites the patch that adds `scripts/kallsyms.rs` so that the file it
/// adds is `crate_main_rs` verbatim: the hunk body, the `@@ -0,0 +1,N @@`
/// header, the blob id on the `index` line (via `git hash-object`, same
/// abbreviation length) and the diffstat (per-file counts and bars, and
/// the summary line). Returns whether the patch changed.
pub fn sync_generator(series_dir: &Path, crate_main_rs: &Path) -> Result<bool> {
    let series = Series::load(series_dir)?;
    let entry = series.generator_patch()?;
    let text = read_patch(entry)?;
    let krate = std::fs::read_to_string(crate_main_rs)
        .with_context(|| format!("reading {}", crate_main_rs.display()))?;
    let new = resync_patch_text(&text, &krate)
        .with_context(|| format!("resyncing {}", entry.path.display()))?;
    if new == text {
        return Ok(false);
    }
    std::fs::write(&entry.path, &new)
        .with_context(|| format!("writing {}", entry.path.display()))?;
    Ok(true)
}

fn git_blob_id(content: &str) -> Result<String> {
    let mut child = Command::new("git")
        .args(["hash-object", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running git hash-object")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(content.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("git hash-object failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn resync_patch_text(text: &str, krate: &str) -> Result<String> {
    let hunk = find_generator_hunk(text)?;
    let mut body = String::new();
    for l in krate.split_inclusive('\n') {
        body.push('+');
        body.push_str(l);
    }
    if !krate.is_empty() && !krate.ends_with('\n') {
        body.push_str("\n\\ No newline at end of file\n");
    }
    let n = krate.split_inclusive('\n').count();
    let old_header = &text[hunk.header.clone()];
    // keep any function context after the closing @@
    let tail = old_header
        .trim_end_matches('\n')
        .split_once(" @@")
        .map_or("", |(_, t)| t);
    let header = if n == 1 {
        format!("@@ -0,0 +1 @@{tail}\n")
    } else {
        format!("@@ -0,0 +1,{n} @@{tail}\n")
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..hunk.header.start]);
    out.push_str(&header);
    out.push_str(&body);
    out.push_str(&text[hunk.body.end..]);

    // index line of the generator's section
    let section = Regex::new(&format!(
        r"(?m)^diff --git a/{p} b/{p}\nnew file mode \d+\nindex 0+\.\.([0-9a-f]+)$",
        p = regex::escape(GENERATOR_PATH)
    ))
    .unwrap();
    if let Some(c) = section.captures(&out) {
        let m = c.get(1).unwrap();
        let id = git_blob_id(krate)?;
        let short = &id[..m.as_str().len().min(id.len())];
        out.replace_range(m.range(), short);
    }
    Ok(fix_diffstat(&out))
}

/// Recomputes the diffstat block (between the `---` line and the first
/// `diff --git`) from the hunks of the patch, the way `git format-patch`
/// lays it out (72 columns, git's `show_stats()` widths and scaling), so
/// that a resynced patch looks like one git made. A stat it cannot redo
/// (binary files, renames) is left as it is.
fn fix_diffstat(text: &str) -> String {
    const WIDTH: usize = 72; // format-patch's MAIL_DEFAULT_WRAP
    let Some(sep) = text.find("\n---\n") else {
        return text.to_string();
    };
    let stat_start = sep + 5;
    let Some(diff_off) = text[stat_start..].find("\ndiff --git ") else {
        return text.to_string();
    };
    let stat_end = stat_start + diff_off + 1;
    let stat = &text[stat_start..stat_end];

    // Lines added and deleted per file, from the hunks.
    let mut counts: Vec<(String, usize, usize)> = Vec::new();
    let mut in_hunk = false;
    for l in text[stat_end..].lines() {
        if let Some(rest) = l.strip_prefix("diff --git ") {
            let Some((a, b)) = rest.split_once(" b/") else {
                return text.to_string();
            };
            if a.strip_prefix("a/") != Some(b) {
                return text.to_string(); // rename or copy
            }
            counts.push((b.to_string(), 0, 0));
            in_hunk = false;
        } else if l.starts_with("@@ ") {
            in_hunk = true;
        } else if l == "-- " {
            break;
        } else if in_hunk {
            let c = counts.last_mut().expect("hunk after a diff header");
            if l.starts_with('+') {
                c.1 += 1;
            } else if l.starts_with('-') {
                c.2 += 1;
            }
        }
    }
    let is_file_line = |l: &str| l.starts_with(' ') && l.contains(" | ");
    let file_lines = stat.lines().filter(|l| is_file_line(l)).count();
    if file_lines != counts.len() || stat.contains(" | Bin") {
        return text.to_string();
    }

    let max_len = counts
        .iter()
        .map(|c| c.0.chars().count())
        .max()
        .unwrap_or(0);
    let max_change = counts.iter().map(|c| c.1 + c.2).max().unwrap_or(0);
    let number_width = max_change.to_string().len();
    let width = WIDTH.max(16 + 6 + number_width);
    let mut graph_width = max_change;
    let mut name_width = max_len;
    if name_width + number_width + 6 + graph_width > width {
        if graph_width > (width * 3 / 8).saturating_sub(number_width + 6) {
            graph_width = (width * 3 / 8).saturating_sub(number_width + 6).max(6);
        }
        if name_width > width - number_width - 6 - graph_width {
            name_width = width - number_width - 6 - graph_width;
        } else {
            graph_width = width - number_width - 6 - name_width;
        }
    }
    let scale = |it: usize| {
        if it == 0 {
            0
        } else {
            1 + it * (graph_width - 1) / max_change
        }
    };

    let mut file_stats = String::new();
    let (mut ins, mut del) = (0, 0);
    for (name, a, d) in &counts {
        ins += a;
        del += d;
        let (mut pa, mut pd) = (*a, *d);
        if graph_width <= max_change {
            let mut total = scale(a + d);
            if total < 2 && *a > 0 && *d > 0 {
                total = 2;
            }
            if a < d {
                pa = scale(*a);
                pd = total - pa;
            } else {
                pd = scale(*d);
                pa = total - pd;
            }
        }
        let mut shown: String = name.clone();
        let mut prefix = "";
        if name.chars().count() > name_width {
            prefix = "...";
            let keep = name_width.saturating_sub(3);
            let tail: String = name.chars().skip(name.chars().count() - keep).collect();
            shown = match tail.find('/') {
                Some(i) => tail[i..].to_string(),
                None => tail,
            };
        }
        let pad = name_width.saturating_sub(prefix.len() + shown.chars().count());
        let _ = writeln!(
            file_stats,
            " {prefix}{shown}{:pad$} | {:>number_width$}{}{}{}",
            "",
            a + d,
            if a + d > 0 { " " } else { "" },
            "+".repeat(pa),
            "-".repeat(pd)
        );
    }
    let n = counts.len();
    let mut summary = format!(" {n} file{} changed", if n == 1 { "" } else { "s" });
    if ins > 0 || del == 0 {
        let _ = write!(
            summary,
            ", {ins} insertion{}(+)",
            if ins == 1 { "" } else { "s" }
        );
    }
    if del > 0 || ins == 0 {
        let _ = write!(
            summary,
            ", {del} deletion{}(-)",
            if del == 1 { "" } else { "s" }
        );
    }

    let mut out = String::new();
    let (mut files_done, mut summary_done) = (false, false);
    for l in stat.split_inclusive('\n') {
        if is_file_line(l) {
            if !files_done {
                out.push_str(&file_stats);
                files_done = true;
            }
        } else if files_done && !summary_done && l.starts_with(' ') && l.contains(" changed") {
            out.push_str(&summary);
            out.push('\n');
            summary_done = true;
        } else {
            out.push_str(l);
        }
    }
    let mut res = String::with_capacity(text.len());
    res.push_str(&text[..stat_start]);
    res.push_str(&out);
    res.push_str(&text[stat_end..]);
    res
}
