//! `harness::kernel::series`: parsing the series file and fingerprints.

use std::fs;
use std::path::Path;

use harness::kernel::series::{Series, Variant};

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn three_patches(dir: &Path) {
    write(dir, "a.patch", "patch a\n");
    write(dir, "b.patch", "patch b\n");
    write(dir, "c.patch", "patch c\n");
}

#[test]
fn parses_entries_flags_and_comments() {
    let t = tempfile::tempdir().unwrap();
    three_patches(t.path());
    write(
        t.path(),
        "series",
        "# header comment\n\na.patch baseline   # fixture\n  b.patch\n#c.patch\nc.patch\t# trailing\n",
    );
    let s = Series::load(t.path()).unwrap();
    let got: Vec<(&str, bool, usize)> = s
        .entries
        .iter()
        .map(|e| (e.file.as_str(), e.baseline, e.line))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a.patch", true, 3),
            ("b.patch", false, 4),
            ("c.patch", false, 6)
        ]
    );
    let names = |v| {
        s.patches_for(v)
            .iter()
            .map(|e| e.file.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(Variant::Patched), ["a.patch", "b.patch", "c.patch"]);
    assert_eq!(names(Variant::Baseline), ["a.patch"]);
    assert_eq!(s.entries[0].path, t.path().join("a.patch"));
}

fn load_err(series: &str) -> String {
    let t = tempfile::tempdir().unwrap();
    three_patches(t.path());
    write(t.path(), "series", series);
    let e = Series::load(t.path()).unwrap_err();
    format!("{e:#}")
}

#[test]
fn errors_name_the_series_file_and_line() {
    let e = load_err("a.patch\nmissing.patch\n");
    assert!(e.contains("series:2"), "{e}");
    assert!(e.contains("missing.patch"), "{e}");
    assert!(e.contains("does not exist"), "{e}");

    let e = load_err("a.patch\n\nb.patch basline\n");
    assert!(e.contains("series:3"), "{e}");
    assert!(e.contains("basline"), "{e}");

    let e = load_err("a.patch\nb.patch\na.patch\n");
    assert!(e.contains("series:3") && e.contains("line 1"), "{e}");

    let e = load_err("a.patch baseline baseline\n");
    assert!(e.contains("series:1"), "{e}");

    let e = load_err("../a.patch\n");
    assert!(e.contains("series:1"), "{e}");
}

#[test]
fn missing_series_file_is_named() {
    let t = tempfile::tempdir().unwrap();
    let e = format!("{:#}", Series::load(t.path()).unwrap_err());
    assert!(
        e.contains(&t.path().join("series").display().to_string()),
        "{e}"
    );
}

#[test]
fn fingerprint_is_stable_and_content_sensitive() {
    let t = tempfile::tempdir().unwrap();
    three_patches(t.path());
    write(t.path(), "series", "a.patch baseline\nb.patch\nc.patch\n");
    let s = Series::load(t.path()).unwrap();
    let p1 = s.fingerprint(Variant::Patched).unwrap();
    let b1 = s.fingerprint(Variant::Baseline).unwrap();
    assert_eq!(p1.len(), 64);
    assert!(p1
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(p1, b1);
    // stable across loads and calls
    let s2 = Series::load(t.path()).unwrap();
    assert_eq!(s2.fingerprint(Variant::Patched).unwrap(), p1);
    assert_eq!(s2.fingerprint(Variant::Baseline).unwrap(), b1);

    // comments and blank lines don't matter
    write(
        t.path(),
        "series",
        "# x\na.patch baseline # y\n\nb.patch\nc.patch\n",
    );
    let s3 = Series::load(t.path()).unwrap();
    assert_eq!(s3.fingerprint(Variant::Patched).unwrap(), p1);

    // a change in a patch only the patched variant uses
    write(t.path(), "c.patch", "patch c, changed\n");
    assert_ne!(s.fingerprint(Variant::Patched).unwrap(), p1);
    assert_eq!(s.fingerprint(Variant::Baseline).unwrap(), b1);

    // moving a byte from one patch to the next changes it too
    write(t.path(), "c.patch", "patch c\n");
    write(t.path(), "a.patch", "patch a\npatch b");
    write(t.path(), "b.patch", "\n");
    assert_ne!(s.fingerprint(Variant::Patched).unwrap(), p1);

    // order matters
    three_patches(t.path());
    write(t.path(), "series", "a.patch baseline\nc.patch\nb.patch\n");
    let s4 = Series::load(t.path()).unwrap();
    assert_ne!(s4.fingerprint(Variant::Patched).unwrap(), p1);
    assert_eq!(s4.fingerprint(Variant::Baseline).unwrap(), b1);
}
