//! `harness::kernel::series`: applying a series to a tree, and keeping the
//! generator patch in sync with the crate, on small synthetic series made
//! with `git format-patch`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::kernel::series::{
    generator_drift, series_is_regenerated, sync_series, Pristine, Series, Variant,
    FORMAT_PATCH_ARGS,
};

fn git(dir: &Path, args: &[&str]) -> String {
    // A fixed date and no user configuration, so that two series made
    // from the same commits are the same bytes.
    let out = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", "2026-11-26T02:58:31Z")
        .env("GIT_COMMITTER_DATE", "2026-11-26T02:58:31Z")
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
    let repo = pristine_repo(pristine);
    let r = repo.path();
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
    write_series(
        r,
        series_dir,
        &[],
        "0001-one.patch baseline\n0002-two.patch\n0003-three.patch\n",
    );
}

/// A git repository whose first commit holds what `fill` writes.
fn pristine_repo(fill: fn(&Path)) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    fill(repo.path());
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "pristine"]);
    repo
}

/// The last three commits of `repo` as patches in `series_dir`
/// (`git format-patch` with `args`), and its `series` file.
fn write_series(repo: &Path, series_dir: &Path, args: &[&str], series: &str) {
    let mut cmd = vec!["format-patch", "-q", "-o", series_dir.to_str().unwrap()];
    cmd.extend(args);
    cmd.push("HEAD~3");
    git(repo, &cmd);
    fs::write(series_dir.join("series"), series).unwrap();
}

/// The three-patch series of [`make_series`], loaded (with its dir).
fn loaded_series() -> (tempfile::TempDir, Series) {
    let sd = tempfile::tempdir().unwrap();
    make_series(sd.path());
    let s = Series::load(sd.path()).unwrap();
    (sd, s)
}

/// A pristine tree, with `edit` (path, content) written over it.
fn tree_with(edit: Option<(&str, &str)>) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    pristine(tree.path());
    if let Some((rel, text)) = edit {
        write(tree.path(), rel, text);
    }
    tree
}

fn read(tree: &tempfile::TempDir, rel: &str) -> String {
    fs::read_to_string(tree.path().join(rel)).unwrap()
}

#[test]
fn applies_dependent_patches_in_order() {
    let (_sd, s) = loaded_series();

    let tree = tree_with(None);
    s.apply(tree.path(), Variant::Patched).unwrap();
    assert_eq!(
        read(&tree, "kernel/main.c"),
        MAIN_C
            .replace("int b;", "int B2;")
            .replace("int f;", "int F;")
    );
    assert_eq!(read(&tree, "kernel/new.c"), "new\n");

    let tree = tree_with(None);
    s.apply(tree.path(), Variant::Baseline).unwrap();
    assert_eq!(
        read(&tree, "kernel/main.c"),
        MAIN_C.replace("int b;", "int B;")
    );
    assert!(!tree.path().join("kernel/new.c").exists());
}

#[test]
fn a_patch_that_does_not_apply_is_named_and_nothing_is_applied() {
    let (_sd, s) = loaded_series();

    // The tree differs where patch 2's second hunk goes (f), so patch 1
    // applies but patch 2 does not.
    let tree = tree_with(Some((
        "kernel/main.c",
        &MAIN_C.replace("int f;", "long f;"),
    )));
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
    let (_sd, s) = loaded_series();

    let tree = tree_with(Some(("kernel/main.c", &MAIN_C.replace("int b;", "int x;"))));
    let before = snapshot(tree.path());
    let e = format!("{:#}", s.apply(tree.path(), Variant::Baseline).unwrap_err());
    assert!(
        e.contains("0001-one.patch") && e.contains("hunk #1 of kernel/main.c"),
        "{e}"
    );
    assert_eq!(snapshot(tree.path()), before);

    let tree = tree_with(Some(("kernel/new.c", "already here\n")));
    let before = snapshot(tree.path());
    let e = format!("{:#}", s.apply(tree.path(), Variant::Patched).unwrap_err());
    assert!(e.contains("0003-three.patch"), "{e}");
    assert!(e.contains("kernel/new.c: already exists"), "{e}");
    assert_eq!(snapshot(tree.path()), before);
}

#[test]
fn applies_at_the_tree_root_inside_another_repository() {
    let (_sd, s) = loaded_series();

    let outer = tempfile::tempdir().unwrap();
    git(outer.path(), &["init", "-q"]);
    let tree = outer.path().join("cache/linux");
    pristine(&tree);
    s.apply(&tree, Variant::Patched).unwrap();
    assert!(tree.join("kernel/new.c").exists());
    assert!(!outer.path().join("kernel").exists());
}

const GEN_ROOT: &str = "mod a;\nfn main() {\n    a::f();\n}\n";
const GEN_A: &str = "pub(crate) fn f() {\n    println!(\"one\");\n}\n";

/// The pristine tree of the generator series: `scripts/Makefile`.
fn generator_pristine(root: &Path) {
    write(root, "scripts/Makefile", "a\nb\n");
}

/// A series of three patches made by git: 1 changes `scripts/Makefile`,
/// 2 adds the generator `scripts/kallsyms-rs/` (its `*.rs` files from
/// `gen`: name, content) and a Makefile there and changes
/// `scripts/Makefile`, 3 changes `scripts/Makefile` once more (a patch to
/// carry over after the generator's commit is amended).
fn make_generator_series(series_dir: &Path, gen: &[(&str, &str)]) {
    let repo = pristine_repo(generator_pristine);
    let r = repo.path();
    write(r, "scripts/Makefile", "a\nb\nc\n");
    git(r, &["commit", "-qam", "one"]);
    for (name, text) in gen {
        write(r, &format!("scripts/kallsyms-rs/{name}"), text);
    }
    write(
        r,
        "scripts/kallsyms-rs/Makefile",
        "hostprogs-always-y += kallsyms-rs\nkallsyms-rs-rust := y\n",
    );
    write(r, "scripts/Makefile", "a\nb\nc\nsubdir-y += kallsyms-rs\n");
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "add the generator"]);
    write(
        r,
        "scripts/Makefile",
        "a\nb\nc\nsubdir-y += kallsyms-rs\nd\n",
    );
    git(r, &["commit", "-qam", "three"]);
    write_series(
        r,
        series_dir,
        &FORMAT_PATCH_ARGS,
        "0001-one.patch\n0002-add-the-generator.patch\n0003-three.patch\n",
    );
}

/// The crate's `src/`: `main.rs` and the modules in `files`.
fn write_crate(dir: &Path, files: &[(&str, &str)]) {
    for e in fs::read_dir(dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    for (name, text) in files {
        write(dir, name, text);
    }
}

fn apply_to_fresh(series_dir: &Path) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    generator_pristine(tree.path());
    Series::load(series_dir)
        .unwrap()
        .apply(tree.path(), Variant::Patched)
        .unwrap();
    tree
}

#[test]
fn generator_drift_and_sync() {
    let sd = tempfile::tempdir().unwrap();
    make_generator_series(sd.path(), &[("kallsyms-rs.rs", GEN_ROOT), ("a.rs", GEN_A)]);
    let pristine_tree = tempfile::tempdir().unwrap();
    generator_pristine(pristine_tree.path());
    let pristine = Pristine::Tree(pristine_tree.path());
    let krate = tempfile::tempdir().unwrap();
    let src = krate.path();

    // In sync: regenerating changes no byte of any patch.
    write_crate(src, &[("main.rs", GEN_ROOT), ("a.rs", GEN_A)]);
    generator_drift(sd.path(), src).unwrap();
    series_is_regenerated(sd.path(), src, pristine).unwrap();
    assert_eq!(
        sync_series(sd.path(), src, pristine).unwrap(),
        Vec::<String>::new()
    );

    // The crate moved on: a module changed, one added.
    let a2 = "pub(crate) fn f() {\n    println!(\"two\");\n}\n";
    write_crate(
        src,
        &[("main.rs", GEN_ROOT), ("a.rs", a2), ("b.rs", "// b\n")],
    );
    let e = format!("{:#}", generator_drift(sd.path(), src).unwrap_err());
    assert!(e.contains("0002-add-the-generator.patch"), "{e}");
    assert!(e.contains("scripts/kallsyms-rs/a.rs differs"), "{e}");
    assert!(e.contains("first difference at line 2"), "{e}");
    assert!(e.contains("b.rs is not in the patch"), "{e}");
    assert!(e.contains("cargo xtask sync-series"), "{e}");
    let e = format!(
        "{:#}",
        series_is_regenerated(sd.path(), src, pristine).unwrap_err()
    );
    assert!(e.contains("0002-add-the-generator.patch"), "{e}");
    assert!(!e.contains("0003"), "{e}");

    assert_eq!(
        sync_series(sd.path(), src, pristine).unwrap(),
        vec!["0002-add-the-generator.patch".to_string()]
    );
    generator_drift(sd.path(), src).unwrap();
    assert!(sync_series(sd.path(), src, pristine).unwrap().is_empty());
    let tree = apply_to_fresh(sd.path());
    let gen_dir = tree.path().join("scripts/kallsyms-rs");
    assert_eq!(
        fs::read_to_string(gen_dir.join("kallsyms-rs.rs")).unwrap(),
        GEN_ROOT
    );
    assert_eq!(fs::read_to_string(gen_dir.join("a.rs")).unwrap(), a2);
    assert_eq!(fs::read_to_string(gen_dir.join("b.rs")).unwrap(), "// b\n");
    assert!(
        gen_dir.join("Makefile").is_file(),
        "the patch's other files stay"
    );
    assert_eq!(
        fs::read_to_string(tree.path().join("scripts/Makefile")).unwrap(),
        "a\nb\nc\nsubdir-y += kallsyms-rs\nd\n"
    );

    // The synced patch is exactly what git makes for that content.
    let theirs = tempfile::tempdir().unwrap();
    make_generator_series(
        theirs.path(),
        &[
            ("kallsyms-rs.rs", GEN_ROOT),
            ("a.rs", a2),
            ("b.rs", "// b\n"),
        ],
    );
    for f in [
        "0001-one.patch",
        "0002-add-the-generator.patch",
        "0003-three.patch",
    ] {
        assert_eq!(
            fs::read_to_string(sd.path().join(f)).unwrap(),
            fs::read_to_string(theirs.path().join(f)).unwrap(),
            "{f}"
        );
    }

    // A module removed from the crate leaves the patch.
    write_crate(src, &[("main.rs", GEN_ROOT), ("a.rs", a2)]);
    let e = format!("{:#}", generator_drift(sd.path(), src).unwrap_err());
    assert!(
        e.contains("scripts/kallsyms-rs/b.rs is in the patch"),
        "{e}"
    );
    sync_series(sd.path(), src, pristine).unwrap();
    generator_drift(sd.path(), src).unwrap();
    let tree = apply_to_fresh(sd.path());
    assert!(!tree.path().join("scripts/kallsyms-rs/b.rs").exists());
}

#[test]
fn only_the_generator_patch_may_touch_the_generator() {
    let sd = tempfile::tempdir().unwrap();
    make_generator_series(sd.path(), &[("kallsyms-rs.rs", GEN_ROOT), ("a.rs", GEN_A)]);
    // Patch 3 edits a module too (made by hand from patch 2's section).
    let p2 = fs::read_to_string(sd.path().join("0002-add-the-generator.patch")).unwrap();
    let p3_path = sd.path().join("0003-three.patch");
    let p3 = fs::read_to_string(&p3_path).unwrap();
    let section = &p2[p2.find("diff --git a/scripts/kallsyms-rs/a.rs").unwrap()..];
    let section = &section[..section.find("\ndiff --git").unwrap() + 1];
    fs::write(&p3_path, format!("{p3}{section}")).unwrap();
    let krate = tempfile::tempdir().unwrap();
    write_crate(krate.path(), &[("main.rs", GEN_ROOT), ("a.rs", GEN_A)]);
    let e = format!(
        "{:#}",
        generator_drift(sd.path(), krate.path()).unwrap_err()
    );
    assert!(
        e.contains("both 0002-add-the-generator.patch and 0003-three.patch change scripts/kallsyms-rs/*.rs"),
        "{e}"
    );
}

#[test]
fn a_hand_edited_patch_is_not_what_git_writes() {
    let sd = tempfile::tempdir().unwrap();
    make_generator_series(sd.path(), &[("kallsyms-rs.rs", GEN_ROOT), ("a.rs", GEN_A)]);
    let p1 = sd.path().join("0001-one.patch");
    let text = fs::read_to_string(&p1).unwrap();
    // A stale diffstat: git apply does not mind, git writes it right.
    let edited = text.replace(
        " 1 file changed, 1 insertion(+)",
        " 1 file changed, 2 insertions(+)",
    );
    assert_ne!(edited, text);
    fs::write(&p1, &edited).unwrap();
    let pristine_tree = tempfile::tempdir().unwrap();
    generator_pristine(pristine_tree.path());
    let pristine = Pristine::Tree(pristine_tree.path());
    let krate = tempfile::tempdir().unwrap();
    write_crate(krate.path(), &[("main.rs", GEN_ROOT), ("a.rs", GEN_A)]);
    generator_drift(sd.path(), krate.path()).unwrap();
    let e = format!(
        "{:#}",
        series_is_regenerated(sd.path(), krate.path(), pristine).unwrap_err()
    );
    assert!(e.contains("0001-one.patch"), "{e}");
    assert!(e.contains("cargo xtask sync-series"), "{e}");
    assert_eq!(
        sync_series(sd.path(), krate.path(), pristine).unwrap(),
        vec!["0001-one.patch".to_string()]
    );
    assert_eq!(fs::read_to_string(&p1).unwrap(), text);
}
