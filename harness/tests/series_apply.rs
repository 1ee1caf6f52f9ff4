//! `harness::series`: applying a series to a tree, and keeping the
//! generator patch in sync with the crate, on small synthetic series made
//! with `git format-patch`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::series::{generator_drift, sync_generator, Series, Variant};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// Every file below `root` (except `.git`) with its content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() == ".git" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

const MAIN_C: &str = "int a;\nint b;\nint c;\nint d;\nint e;\nint f;\nint g;\n";

/// Pristine tree content: `kernel/main.c` and `README`.
fn pristine(root: &Path) {
    write(root, "kernel/main.c", MAIN_C);
    write(root, "README", "readme\n");
}

/// Builds a series of three dependent patches in `series_dir`:
/// 1. (baseline) kernel/main.c: b -> B
/// 2. kernel/main.c: B -> B2 (only applies after 1), f -> F
/// 3. adds kernel/new.c
fn make_series(series_dir: &Path) {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q"]);
    pristine(r);
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "pristine"]);
    write(r, "kernel/main.c", &MAIN_C.replace("int b;", "int B;"));
    git(r, &["commit", "-qam", "one"]);
    write(
        r,
        "kernel/main.c",
        &MAIN_C
            .replace("int b;", "int B2;")
            .replace("int f;", "int F;"),
    );
    git(r, &["commit", "-qam", "two"]);
    write(r, "kernel/new.c", "new\n");
    git(r, &["add", "kernel/new.c"]);
    git(r, &["commit", "-qm", "three"]);
    git(
        r,
        &[
            "format-patch",
            "-q",
            "-o",
            series_dir.to_str().unwrap(),
            "HEAD~3",
        ],
    );
    fs::write(
        series_dir.join("series"),
        "0001-one.patch baseline\n0002-two.patch\n0003-three.patch\n",
    )
    .unwrap();
}

#[test]
fn applies_dependent_patches_in_order() {
    let sd = tempfile::tempdir().unwrap();
    make_series(sd.path());
    let s = Series::load(sd.path()).unwrap();

    let tree = tempfile::tempdir().unwrap();
    pristine(tree.path());
    s.apply(tree.path(), Variant::Patched).unwrap();
    assert_eq!(
        fs::read_to_string(tree.path().join("kernel/main.c")).unwrap(),
        MAIN_C
            .replace("int b;", "int B2;")
            .replace("int f;", "int F;")
    );
    assert_eq!(
        fs::read_to_string(tree.path().join("kernel/new.c")).unwrap(),
        "new\n"
    );

    let tree = tempfile::tempdir().unwrap();
    pristine(tree.path());
    s.apply(tree.path(), Variant::Baseline).unwrap();
    assert_eq!(
        fs::read_to_string(tree.path().join("kernel/main.c")).unwrap(),
        MAIN_C.replace("int b;", "int B;")
    );
    assert!(!tree.path().join("kernel/new.c").exists());
}

#[test]
fn a_patch_that_does_not_apply_is_named_and_nothing_is_applied() {
    let sd = tempfile::tempdir().unwrap();
    make_series(sd.path());
    let s = Series::load(sd.path()).unwrap();

    // The tree differs where patch 2's second hunk goes (f), so patch 1
    // applies but patch 2 does not.
    let tree = tempfile::tempdir().unwrap();
    pristine(tree.path());
    write(
        tree.path(),
        "kernel/main.c",
        &MAIN_C.replace("int f;", "long f;"),
    );
    let before = snapshot(tree.path());
    let e = format!("{:#}", s.apply(tree.path(), Variant::Patched).unwrap_err());
    assert_eq!(snapshot(tree.path()), before, "tree was modified");
    assert!(e.contains("0002-two.patch"), "{e}");
    assert!(e.contains("series line 2"), "{e}");
    assert!(e.contains("kernel/main.c"), "{e}");
    assert!(e.contains("hunk #"), "{e}");
    assert!(e.contains("git apply --check"), "{e}");
    assert!(
        e.contains("0001-one.patch"),
        "reproducer needs patch 1: {e}"
    );
    assert!(e.contains("untouched"), "{e}");

    // The reproducer really reproduces, and leaves the tree alone too.
    let repro = e
        .lines()
        .find_map(|l| l.strip_prefix("reproduce with: "))
        .expect("reproduce line")
        .to_string();
    let out = Command::new("sh").arg("-c").arg(&repro).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kernel/main.c"));
    assert_eq!(snapshot(tree.path()), before);

    // The baseline variant (patch 1 only) still applies to that tree.
    s.apply(tree.path(), Variant::Baseline).unwrap();
}

#[test]
fn first_patch_failing_and_existing_new_file() {
    let sd = tempfile::tempdir().unwrap();
    make_series(sd.path());
    let s = Series::load(sd.path()).unwrap();

    let tree = tempfile::tempdir().unwrap();
    pristine(tree.path());
    write(
        tree.path(),
        "kernel/main.c",
        &MAIN_C.replace("int b;", "int x;"),
    );
    let before = snapshot(tree.path());
    let e = format!("{:#}", s.apply(tree.path(), Variant::Baseline).unwrap_err());
    assert!(
        e.contains("0001-one.patch") && e.contains("hunk #1 of kernel/main.c"),
        "{e}"
    );
    assert_eq!(snapshot(tree.path()), before);

    let tree = tempfile::tempdir().unwrap();
    pristine(tree.path());
    write(tree.path(), "kernel/new.c", "already here\n");
    let before = snapshot(tree.path());
    let e = format!("{:#}", s.apply(tree.path(), Variant::Patched).unwrap_err());
    assert!(e.contains("0003-three.patch"), "{e}");
    assert!(e.contains("kernel/new.c: already exists"), "{e}");
    assert_eq!(snapshot(tree.path()), before);
}

#[test]
fn applies_at_the_tree_root_inside_another_repository() {
    let sd = tempfile::tempdir().unwrap();
    make_series(sd.path());
    let s = Series::load(sd.path()).unwrap();

    let outer = tempfile::tempdir().unwrap();
    git(outer.path(), &["init", "-q"]);
    let tree = outer.path().join("cache/linux");
    pristine(&tree);
    s.apply(&tree, Variant::Patched).unwrap();
    assert!(tree.join("kernel/new.c").exists());
    assert!(!outer.path().join("kernel").exists());
}

const GEN_V1: &str = "fn main() {\n    println!(\"one\");\n}\n";

/// A series whose patch 2 adds `scripts/kallsyms.rs` (content `gen`) and
/// touches `scripts/Makefile`.
fn make_generator_series(series_dir: &Path, gen: &str) {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q"]);
    write(r, "scripts/Makefile", "a\nb\n");
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "pristine"]);
    write(r, "scripts/Makefile", "a\nb\nc\n");
    git(r, &["commit", "-qam", "one"]);
    write(r, "scripts/kallsyms.rs", gen);
    write(r, "scripts/Makefile", "a\nb\nc\nkallsyms-rs\n");
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "add the generator"]);
    git(
        r,
        &[
            "format-patch",
            "-q",
            "-o",
            series_dir.to_str().unwrap(),
            "HEAD~2",
        ],
    );
    fs::write(
        series_dir.join("series"),
        "0001-one.patch\n0002-add-the-generator.patch\n",
    )
    .unwrap();
}

fn apply_to_fresh(series_dir: &Path) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    write(tree.path(), "scripts/Makefile", "a\nb\n");
    Series::load(series_dir)
        .unwrap()
        .apply(tree.path(), Variant::Patched)
        .unwrap();
    tree
}

#[test]
fn generator_drift_and_sync() {
    let sd = tempfile::tempdir().unwrap();
    make_generator_series(sd.path(), GEN_V1);
    let krate = tempfile::tempdir().unwrap();
    let main_rs = krate.path().join("main.rs");

    fs::write(&main_rs, GEN_V1).unwrap();
    generator_drift(sd.path(), &main_rs).unwrap();
    assert!(
        !sync_generator(sd.path(), &main_rs).unwrap(),
        "no change needed"
    );

    // The crate moved on: two lines changed, three added.
    let v2 = "fn main() {\n    println!(\"two\");\n    let x = 1;\n    let y = 2;\n    let z = x + y;\n    drop(z);\n}\n";
    fs::write(&main_rs, v2).unwrap();
    let e = format!("{:#}", generator_drift(sd.path(), &main_rs).unwrap_err());
    assert!(e.contains("0002-add-the-generator.patch"), "{e}");
    assert!(e.contains("line 2:"), "{e}");
    assert!(e.contains("cargo xtask sync-series"), "{e}");

    assert!(sync_generator(sd.path(), &main_rs).unwrap());
    generator_drift(sd.path(), &main_rs).unwrap();
    let patch = fs::read_to_string(sd.path().join("0002-add-the-generator.patch")).unwrap();
    assert!(patch.contains("@@ -0,0 +1,7 @@"), "{patch}");
    assert!(
        patch.contains(" 2 files changed, 8 insertions(+)"),
        "{patch}"
    );
    assert!(
        patch.contains(" scripts/kallsyms.rs | 7 +++++++"),
        "{patch}"
    );
    let blob = {
        let mut c = Command::new("git")
            .args(["hash-object", "--stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(v2.as_bytes()).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
    };
    assert!(
        patch.contains(&format!("index 0000000..{}", &blob[..7])),
        "{patch}"
    );
    let tree = apply_to_fresh(sd.path());
    assert_eq!(
        fs::read_to_string(tree.path().join("scripts/kallsyms.rs")).unwrap(),
        v2
    );
    assert_eq!(
        fs::read_to_string(tree.path().join("scripts/Makefile")).unwrap(),
        "a\nb\nc\nkallsyms-rs\n"
    );

    // No newline at the end, and down to one line.
    let v3 = "fn main() {}";
    fs::write(&main_rs, v3).unwrap();
    assert!(sync_generator(sd.path(), &main_rs).unwrap());
    generator_drift(sd.path(), &main_rs).unwrap();
    let tree = apply_to_fresh(sd.path());
    assert_eq!(
        fs::read_to_string(tree.path().join("scripts/kallsyms.rs")).unwrap(),
        v3
    );
}

#[test]
fn sync_matches_git_format_patch() {
    // Resyncing to content X gives the same diff as git itself makes for
    // X, apart from the header lines that name commits.
    let v2: String = (0..120).map(|i| format!("// line {i}\n")).collect();
    let ours = tempfile::tempdir().unwrap();
    make_generator_series(ours.path(), GEN_V1);
    let krate = tempfile::tempdir().unwrap();
    let main_rs = krate.path().join("main.rs");
    fs::write(&main_rs, &v2).unwrap();
    sync_generator(ours.path(), &main_rs).unwrap();
    let theirs = tempfile::tempdir().unwrap();
    make_generator_series(theirs.path(), &v2);
    let body = |d: &Path| {
        let t = fs::read_to_string(d.join("0002-add-the-generator.patch")).unwrap();
        let start = t.find("\n---\n").unwrap();
        t[start..].to_string()
    };
    assert_eq!(body(ours.path()), body(theirs.path()));
}
