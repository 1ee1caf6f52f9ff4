//! `cargo xtask bisect`: find the first commit where the selected probes
//! fail, by driving `git bisect run` in the user's tree with this binary's
//! hidden `bisect-step` subcommand as the test script.
//!
//! The tree is left as it was found (branch or detached HEAD) on success,
//! on error and on Ctrl-C. Every step builds in the same persistent build
//! dir (keyed by the tree's path), so each one is incremental.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use harness::cell::{arch, CellId, FailKind, SourceKind, Status};
use harness::kernel::prereqs;
use harness::kernel::source::{self, SourceSpec};
use harness::process::{fmt_duration, git};
use harness::results::report;
use harness::testrun::{self, Cell, RunOptions, BUILD_CASE, VM_CASE};
use harness::vm::qemu::Exit;
use libtest_mimic::Arguments;
use serde::{Deserialize, Serialize};

use crate::flags::{BisectArgs, BisectStepArgs};

/// `git bisect run` exit codes.
const GOOD: i32 = 0;
const BAD: i32 = 1;
const SKIP: i32 = 125;
/// Any code above 127 makes `git bisect run` abort: a harness fault must not
/// be recorded as a verdict on the commit.
const ABORT: i32 = 128;

/// What one step found, appended as a JSON line to the record file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StepRecord {
    commit: String,
    subject: String,
    /// The kernel line the step was built and judged as (`7.3`): its
    /// tree's `Makefile`'s.
    kernel: String,
    verdict: i32,
    why: String,
    build_secs: f64,
    boot_secs: Option<f64>,
    /// Failing selected cases with their diagnostics.
    failures: Vec<(String, String)>,
}

/// Bisect builds the user's tree (never Debian's source) and boots the guest.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::None,
    guest: true,
};

fn libtest_args(filter: &[String]) -> Arguments {
    let mut argv = vec!["bisect".to_string()];
    argv.extend(filter.iter().cloned());
    Arguments::from_iter(argv)
}

/// Builds, boots and probes the checked-out commit; classifies it.
fn test_commit(
    tree: &Path,
    arch_name: &str,
    config: &str,
    filter: &[String],
) -> Result<StepRecord> {
    let arch = arch::by_name(arch_name)?;
    let commit = git(tree, &["rev-parse", "HEAD"])?;
    let subject = git(tree, &["log", "-1", "--format=%s"])?;
    let source = source::prepare(&SourceSpec::Tree(tree.to_path_buf()))?;
    let cell = Cell::new(
        &CellId::with_label(arch, config, SourceKind::UserTree),
        &source,
    );
    let opts = RunOptions::default();
    eprintln!("ksh-bisect: testing {} {subject}", &commit[..12]);
    let (mut cell_report, mut times) = testrun::run_cell(&cell, &opts)?;
    let build = times.build;
    // A VM stopped by a limit or a failing QEMU boots once more before
    // the commit is judged: a QEMU stalled by a loaded host (seen: its
    // QMP unanswered for 10 s at a load of 6 on 2 cores, on a --good
    // that passed the next time) must not skip a good commit or abort
    // the bisect; a kernel that hangs hangs again, and a panic is the
    // commit's at once.
    if let Some(Exit::Timeout { what } | Exit::QemuFailed { status: what, .. }) = &times.vm_exit {
        eprintln!(
            "ksh-bisect: {}: the VM did not complete ({}); booting it once more",
            &commit[..12],
            what.lines().next().unwrap_or("")
        );
        (cell_report, times) = testrun::run_cell(&cell, &opts)?;
    }
    let lt = libtest_args(filter);
    let status_of = |suffix: (&str, &str)| {
        let name = cell.case_name(suffix);
        cell_report
            .cases
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status.clone())
    };
    let mut rec = StepRecord {
        commit,
        subject,
        kernel: cell.id.kernel.version().to_string(),
        verdict: GOOD,
        why: String::new(),
        build_secs: build.as_secs_f64(),
        boot_secs: times.boot_to_results.map(|d| d.as_secs_f64()),
        failures: Vec::new(),
    };
    if let Some(Status::Fail { detail: msg, .. }) = status_of(BUILD_CASE) {
        rec.verdict = SKIP;
        rec.why = format!("does not build: {}", msg.lines().next().unwrap_or(""));
        return Ok(rec);
    }
    if let Some(vm @ Status::Fail { .. }) = status_of(VM_CASE) {
        let msg = vm.failure().unwrap_or_default();
        if vm.fail_kind() == Some(FailKind::Harness) {
            // Not the commit's fault: abort rather than skip.
            anyhow::bail!("{msg}");
        }
        rec.verdict = SKIP;
        rec.why = format!(
            "does not boot to completion: {}",
            msg.lines().next().unwrap_or("")
        );
        return Ok(rec);
    }
    for c in &cell_report.cases {
        if report::is_selected(&lt, &c.name) {
            if let Status::Fail { detail: msg, .. } = &c.status {
                rec.failures.push((c.name.clone(), msg.clone()));
            }
        }
    }
    if rec.failures.is_empty() {
        rec.why = "selected probes pass".into();
    } else {
        rec.verdict = BAD;
        rec.why = format!("{} selected case(s) fail", rec.failures.len());
    }
    Ok(rec)
}

/// The hidden `bisect-step` subcommand that `git bisect run` calls.
pub fn step(args: BisectStepArgs) -> Result<i32> {
    let rec = match test_commit(&args.kernel_tree, &args.arch, &args.config, &args.filter) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ksh-bisect: harness fault, aborting the bisect: {e:#}");
            return Ok(ABORT);
        }
    };
    eprintln!(
        "ksh-bisect: {} -> {} ({})",
        &rec.commit[..12],
        verdict_word(rec.verdict),
        rec.why
    );
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.record)?;
    writeln!(f, "{}", serde_json::to_string(&rec)?)?;
    Ok(rec.verdict)
}

fn verdict_word(v: i32) -> &'static str {
    match v {
        GOOD => "good",
        BAD => "bad",
        SKIP => "skip",
        _ => "abort",
    }
}

/// Restores the user's tree: ends any bisect and checks out what was there.
/// `git bisect reset` is repeated while bisect state is left (seen once
/// after a `git bisect run` that aborted on a failing step: one reset
/// moved HEAD but kept the state).
fn restore(tree: &Path, original: &str) {
    for _ in 0..3 {
        let _ = Command::new("git")
            .arg("-C")
            .arg(tree)
            .args(["bisect", "reset", "--quiet", original])
            .output();
        if !bisecting(tree) {
            break;
        }
    }
    let _ = Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(["checkout", "--quiet", original])
        .output();
}

/// Whether the tree has bisect state (`BISECT_START` in its git dir).
fn bisecting(tree: &Path) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(["rev-parse", "--git-path", "BISECT_START"])
        .output()
        .ok()
        .map(|o| {
            tree.join(String::from_utf8_lossy(&o.stdout).trim())
                .exists()
        })
        .unwrap_or(false)
}

pub fn run(args: BisectArgs) -> Result<i32> {
    let tree = args
        .kernel_tree
        .canonicalize()
        .with_context(|| format!("--kernel-tree {}", args.kernel_tree.display()))?;
    let arch = arch::by_name(&args.arch)?;
    // Unknown config, or one that does not apply to this arch: fail now,
    // before any commit is checked out.
    harness::kernel::kconfig::fragments(arch, &args.config)?;
    git(&tree, &["rev-parse", "--git-dir"]).context("--kernel-tree must be a git checkout")?;
    // The tree's Makefile picks the kernel line (its series, generator
    // format and probes), here for the filter and in each step for its
    // build; a version without an entry fails now, naming the supported.
    let kernel = source::prepare(&SourceSpec::Tree(tree.clone()))?.kernel;
    println!(
        "kernel line: {kernel} (the Makefile of {}), generator {}",
        tree.display(),
        kernel.rust_generator_format()
    );
    if !git(&tree, &["status", "--porcelain", "--untracked-files=no"])?.is_empty() {
        bail!("{} has uncommitted changes; commit or stash them first (bisect checks out other commits)", tree.display());
    }
    if tree.join(".git/BISECT_LOG").exists() || git(&tree, &["bisect", "log"]).is_ok() {
        bail!(
            "a bisect is already in progress in {}; finish it with `git bisect reset`",
            tree.display()
        );
    }
    let cell = CellId::with_label(arch, &args.config, SourceKind::UserTree).of_kernel(kernel);
    let names = testrun::test_names(&cell);
    let lt = libtest_args(&args.filter);
    if !names.iter().any(|n| report::is_selected(&lt, n)) {
        bail!(
            "the filter {:?} selects no test of {cell}; see `cargo xtask test -- --list`",
            args.filter,
        );
    }
    let good = git(
        &tree,
        &[
            "rev-parse",
            "--verify",
            &format!("{}^{{commit}}", args.good),
        ],
    )?;
    let bad = git(
        &tree,
        &["rev-parse", "--verify", &format!("{}^{{commit}}", args.bad)],
    )?;
    NEEDS.ensure(&prereqs::Selected {
        arches: vec![arch],
        ..Default::default()
    })?;

    let original = git(&tree, &["symbolic-ref", "-q", "--short", "HEAD"])
        .or_else(|_| git(&tree, &["rev-parse", "HEAD"]))?;
    {
        let tree = tree.clone();
        let original = original.clone();
        harness::process::on_interrupt(Box::new(move || {
            // Give `git bisect run` a moment to stop on its own SIGINT.
            std::thread::sleep(std::time::Duration::from_millis(500));
            restore(&tree, &original);
            eprintln!(
                "ksh-bisect: interrupted; {} is back on {original}",
                tree.display()
            );
        }));
    }
    let result = bisect(&args, &tree, &good, &bad);
    restore(&tree, &original);
    eprintln!("ksh-bisect: {} restored to {original}", tree.display());
    result
}

fn bisect(args: &BisectArgs, tree: &Path, good: &str, bad: &str) -> Result<i32> {
    let record = harness::layout::bisect_record(std::process::id());
    harness::layout::ensure_dir(record.parent().unwrap())?;
    let _ = fs::remove_file(&record);
    let mut steps: Vec<StepRecord> = Vec::new();

    // The endpoints must behave as claimed, or the bisect means nothing.
    let mut endpoint = |rev: &str, want: i32| -> Result<Option<StepRecord>> {
        git(tree, &["checkout", "--quiet", rev])?;
        let rec = test_commit(tree, &args.arch, &args.config, &args.filter)?;
        steps.push(rec.clone());
        if rec.verdict == want {
            return Ok(None);
        }
        print_steps(&steps);
        Ok(Some(rec))
    };
    if let Some(g) = endpoint(good, GOOD)? {
        let (verdict, failures) = (verdict_word(g.verdict), failures_text(&g));
        bail!(
            "--good {} does not pass: {verdict} ({})\n{failures}",
            args.good,
            g.why
        );
    }
    if let Some(b) = endpoint(bad, BAD)? {
        let verdict = verdict_word(b.verdict);
        bail!(
            "--bad {} does not fail the selected probes: {verdict} ({}); nothing to bisect",
            args.bad,
            b.why
        );
    }

    git(tree, &["bisect", "start", bad, good])?;
    let exe = harness::process::self_exe()?;
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(tree)
        .args(["bisect", "run"])
        .arg(&exe)
        .arg("bisect-step");
    cmd.arg("--kernel-tree")
        .arg(tree)
        .args(["--arch", &args.arch, "--config", &args.config])
        .arg("--record")
        .arg(&record);
    if !args.filter.is_empty() {
        cmd.arg("--").args(&args.filter);
    }
    let out = cmd.output().context("running git bisect run")?;
    let run_log = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = fs::read_to_string(&record).unwrap_or_default();
    for line in text.lines() {
        steps.push(serde_json::from_str(line).context("reading a bisect step record")?);
    }
    if !out.status.success() {
        print_steps(&steps);
        bail!("git bisect run failed ({}):\n{run_log}", out.status);
    }
    let first_bad = git(tree, &["rev-parse", "refs/bisect/bad"])?;
    let subject = git(tree, &["log", "-1", "--format=%s", &first_bad])?;
    print_steps(&steps);
    println!("first bad commit: {first_bad} {subject}");
    if let Some(rec) = steps.iter().rev().find(|s| s.commit == first_bad) {
        println!("{}", failures_text(rec));
    }
    if run_log.contains("There are only 'skip'ped commits left") {
        println!("note: skipped commits remain; the first bad commit is one of several candidates:\n{run_log}");
    }
    Ok(0)
}

fn failures_text(rec: &StepRecord) -> String {
    let mut s = String::new();
    for (name, msg) in &rec.failures {
        s.push_str(&format!(
            "--- {name}\n{}\n",
            msg.lines().take(12).collect::<Vec<_>>().join("\n")
        ));
    }
    s
}

fn print_steps(steps: &[StepRecord]) {
    println!(
        "{:<12}  {:<7}  {:<6}  {:>8}  {:>8}  subject",
        "commit", "verdict", "kernel", "build", "boot"
    );
    for s in steps {
        println!(
            "{:<12}  {:<7}  {:<6}  {:>8}  {:>8}  {}",
            &s.commit[..12.min(s.commit.len())],
            verdict_word(s.verdict),
            s.kernel,
            fmt_duration(std::time::Duration::from_secs_f64(s.build_secs)),
            s.boot_secs
                .map(|b| fmt_duration(std::time::Duration::from_secs_f64(b)))
                .unwrap_or_else(|| "-".into()),
            s.subject
        );
    }
}
