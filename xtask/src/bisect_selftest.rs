//! `cargo xtask bisect-selftest`: the end-to-end test of `cargo xtask
//! bisect`. It builds a throwaway git history of one kernel line
//! (`--kernel`, mainline by default: Debian's source of the line, its
//! patch series as commits, harmless commits, one commit that breaks
//! size-aware lookups, more harmless commits), bisects it, and checks that
//! exactly the breaking commit is named, that every step was built as the
//! line the tree's `Makefile` names (nothing tells the bisect the line
//! but the tree), and that the tree is restored.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use harness::cell::Kernel;
use harness::kernel::series::Series;
use harness::kernel::{prereqs, source};
use harness::layout;

use crate::flags::BisectSelftestArgs;

/// git with a fixed identity and no background maintenance competing
/// with the kernel builds.
fn git(tree: &Path, args: &[&str]) -> Result<String> {
    let mut all = vec![
        "-c",
        "user.name=ksh",
        "-c",
        "user.email=ksh@example.org",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "gc.auto=0",
        "-c",
        "maintenance.auto=false",
    ];
    all.extend_from_slice(args);
    harness::process::git(tree, &all)
}

/// A documentation-only commit: changes the history, not the kernel.
fn harmless_commit(tree: &Path, n: usize) -> Result<()> {
    let f = tree.join("Documentation/ksh-bisect-demo.txt");
    let mut text = fs::read_to_string(&f).unwrap_or_default();
    text.push_str(&format!("harmless change {n}\n"));
    fs::write(&f, text)?;
    git(tree, &["add", "-f", "Documentation/ksh-bisect-demo.txt"])?;
    git(
        tree,
        &[
            "commit",
            "-q",
            "-m",
            &format!("Documentation: harmless change {n}"),
        ],
    )?;
    Ok(())
}

/// The regression: size-aware lookups go back to "up to the next symbol"
/// by making every symbol's size read as zero (the rule for unsized
/// symbols). A one-line change in kernel/kallsyms.c, as a real regression
/// would look.
fn breaking_commit(tree: &Path) -> Result<String> {
    let path = tree.join("kernel/kallsyms.c");
    let text = fs::read_to_string(&path)?;
    let marker = "kallsyms_sym_size(";
    let Some(def) = text
        .find(&format!("unsigned long {marker}"))
        .or_else(|| text.find(marker))
    else {
        bail!("kernel/kallsyms.c has no {marker}...): the series' size accessor changed; update the bisect selftest");
    };
    let body_start = text[def..]
        .find('{')
        .map(|i| def + i + 1)
        .context("accessor without a body")?;
    let mut broken = text.clone();
    broken.insert_str(
        body_start,
        "\n\treturn 0;\t/* ksh-bisect-demo: sizes ignored */",
    );
    fs::write(&path, broken)?;
    git(
        tree,
        &[
            "commit",
            "-q",
            "-a",
            "-m",
            "kallsyms: simplify symbol size lookup",
        ],
    )?;
    git(tree, &["rev-parse", "HEAD"])
}

/// The throwaway history starts from Debian's source; its steps boot the guest.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::Debian,
    guest: true,
};

pub fn run(args: BisectSelftestArgs) -> Result<i32> {
    let kernel = match &args.kernel {
        Some(v) => Kernel::parse(v).map_err(|e| anyhow!("--kernel: {e}"))?,
        None => Kernel::mainline(),
    };
    NEEDS.ensure(&prereqs::Selected {
        arches: vec![&harness::cell::arch::X86_64],
        kernel,
        ..Default::default()
    })?;
    let series = Series::load(&layout::patches_dir(kernel.version()))?;
    if series.entries.is_empty() {
        bail!(
            "{} is empty: there are no size-aware lookups to break",
            series.series_file().display()
        );
    }
    // One history per line: each keeps its warm build dir.
    let root = layout::bisect_demo_dir().join(kernel.version());
    let tree = root.join("linux");
    // Reuse the history while the series is unchanged: its build dir then
    // stays warm and a rerun only pays for incremental builds.
    let stamp = root.join("series-fingerprint");
    let fingerprint = format!(
        "v2 {}",
        series.fingerprint(harness::kernel::series::Variant::Patched)?
    );
    let (good, breaking, head_before) =
        if fs::read_to_string(&stamp).ok().as_deref() == Some(fingerprint.as_str()) {
            let _ = git(&tree, &["bisect", "reset", "--quiet"]);
            git(&tree, &["checkout", "--quiet", "demo"])?;
            let ids = fs::read_to_string(root.join("commits"))?;
            let ids: Vec<String> = ids.split_whitespace().map(str::to_string).collect();
            (ids[0].clone(), ids[1].clone(), ids[2].clone())
        } else {
            let ids = make_history(&root, &tree, kernel, &series)?;
            fs::write(
                root.join("commits"),
                format!("{} {} {}\n", ids.0, ids.1, ids.2),
            )?;
            fs::write(&stamp, &fingerprint)?;
            ids
        };

    let exe = harness::process::self_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("bisect")
        .arg("--kernel-tree")
        .arg(&tree)
        .args(["--good", &good, "--bad", "HEAD"]);
    cmd.args(["--arch", "x86_64", "--config", "minimal", "--"])
        .args(&args.filter);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running cargo xtask bisect")?;
    // The bisect's steps record the line each was built as.
    let record = layout::bisect_record(child.id());
    let out = child
        .wait_with_output()
        .context("running cargo xtask bisect")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("the bisect failed ({})", out.status);
    }
    let named = stdout
        .lines()
        .find_map(|l| l.strip_prefix("first bad commit: "))
        .unwrap_or("");
    let mut problems = Vec::new();
    if !named.starts_with(&breaking) {
        problems.push(format!(
            "bisect named {named:?}, the breaking commit is {breaking}"
        ));
    }
    problems.extend(kernel_line_problems(kernel, &stdout, &record));
    if git(&tree, &["rev-parse", "HEAD"])? != head_before
        || git(&tree, &["symbolic-ref", "--short", "HEAD"])? != "demo"
    {
        problems.push("the tree was not restored to branch demo at its old HEAD".into());
    }
    if !git(&tree, &["status", "--porcelain"])?.is_empty() {
        problems.push("the tree has changes after the bisect".into());
    }
    if problems.is_empty() {
        println!(
            "bisect selftest: ok (Linux {kernel}: named {breaking}, every step built as {kernel}, tree restored)"
        );
        Ok(0)
    } else {
        println!("bisect selftest: FAILED\n{}", problems.join("\n"));
        Ok(1)
    }
}

/// What says the bisect took another kernel line than `kernel` from the
/// history's Makefile: its `kernel line:` line, and the line of each step
/// `git bisect run` recorded in `record`.
fn kernel_line_problems(kernel: Kernel, stdout: &str, record: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let said = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kernel line: "))
        .and_then(|l| l.split_whitespace().next());
    if said != Some(kernel.version()) {
        problems.push(format!(
            "the bisect took kernel line {said:?} from the tree, which is Linux {kernel}"
        ));
    }
    let text = fs::read_to_string(record).unwrap_or_default();
    let steps: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if steps.is_empty() {
        problems.push(format!("no bisect step recorded in {}", record.display()));
    }
    for s in &steps {
        if s["kernel"].as_str() != Some(kernel.version()) {
            problems.push(format!(
                "step {} was built as kernel line {}, not {kernel}",
                s["commit"], s["kernel"]
            ));
        }
    }
    problems
}

/// Creates the demo history; returns (good, breaking, head) commit ids.
fn make_history(
    root: &Path,
    tree: &Path,
    kernel: Kernel,
    series: &Series,
) -> Result<(String, String, String)> {
    let _ = fs::remove_dir_all(root);
    layout::ensure_dir(tree)?;
    eprintln!("ksh: building a throwaway history in {}", tree.display());
    let (tarball, version) = source::debian_tarball(kernel)?;
    let st = Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .args(["--strip-components=1", "-C"])
        .arg(tree)
        .status()?;
    if !st.success() {
        bail!("unpacking {} failed", tarball.display());
    }
    git(tree, &["init", "-q", "-b", "demo"])?;
    // The harness's own tree: build dirs go inside it (compiler results of
    // the cached Debian trees are reused), and git ignores them and the mark.
    fs::write(
        tree.join(source::OWNED_TREE_MARKER),
        "made by cargo xtask bisect-selftest\n",
    )?;
    fs::write(
        tree.join(".git/info/exclude"),
        format!(
            "/{}\n/{}*\n",
            source::OWNED_TREE_MARKER,
            layout::IN_TREE_BUILD_PREFIX
        ),
    )?;
    // Debian's tarball carries a top-level .gitignore of `/*`: force.
    git(tree, &["add", "-A", "-f"])?;
    let package = kernel.line().package;
    git(
        tree,
        &["commit", "-q", "-m", &format!("Debian {package} {version}")],
    )?;
    for e in &series.entries {
        git(tree, &["am", "-q", "--keep-cr", &e.path.to_string_lossy()])
            .with_context(|| format!("applying {} with git am", e.file))?;
    }
    let good = git(tree, &["rev-parse", "HEAD"])?;
    harmless_commit(tree, 1)?;
    harmless_commit(tree, 2)?;
    let breaking = breaking_commit(tree)?;
    harmless_commit(tree, 3)?;
    harmless_commit(tree, 4)?;
    let head = git(tree, &["rev-parse", "HEAD"])?;
    Ok((good, breaking, head))
}
