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
    // (series file, what its error must say)
    let cases: &[(&str, &[&str])] = &[
        (
            "a.patch\nmissing.patch\n",
            &["series:2", "missing.patch", "does not exist"],
        ),
        ("a.patch\n\nb.patch basline\n", &["series:3", "basline"]),
        ("a.patch\nb.patch\na.patch\n", &["series:3", "line 1"]),
        ("a.patch baseline baseline\n", &["series:1"]),
        ("../a.patch\n", &["series:1"]),
    ];
    for (series, wants) in cases {
        let e = load_err(series);
        for want in *wants {
            assert!(e.contains(want), "{series:?}: {want:?} not in {e}");
        }
    }
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

/// The committed cover letter lists the committed series; one that lacks
/// a patch, is numbered for another count or keeps a placeholder fails.
#[test]
fn cover_letter_matches_the_series() {
    use harness::kernel::series::{cover_letter_is_current, COVER_LETTER};
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../patches/6.12");
    let series = Series::load(&real).unwrap();
    cover_letter_is_current(&series).unwrap();

    let dir = tempfile::tempdir().unwrap();
    for (f, subject) in [
        ("a.patch", "one thing"),
        ("b.patch", "another"),
        ("c.patch", "a third"),
    ] {
        write(
            dir.path(),
            f,
            &format!("From 0\nSubject: [PATCH 1/3] {subject}\n\nbody\n"),
        );
    }
    write(dir.path(), "series", "a.patch\nb.patch\nc.patch\n");
    let small = Series::load(dir.path()).unwrap();
    let e = format!("{:#}", cover_letter_is_current(&small).unwrap_err());
    assert!(e.contains(COVER_LETTER), "{e}");
    let letter = fs::read_to_string(real.join(COVER_LETTER)).unwrap();
    write(
        dir.path(),
        COVER_LETTER,
        &letter.replace("Subject: [PATCH 00/12]", "Subject: [PATCH 00/03]"),
    );
    let e = format!("{:#}", cover_letter_is_current(&small).unwrap_err());
    assert!(e.contains("shortlog lacks a.patch: one thing"), "{e}");
    assert!(!e.contains("numbered"), "{e}");
    write(
        dir.path(),
        COVER_LETTER,
        "Subject: [PATCH 00/03] *** SUBJECT HERE ***\n",
    );
    let e = format!("{:#}", cover_letter_is_current(&small).unwrap_err());
    assert!(e.contains("placeholder"), "{e}");
}
