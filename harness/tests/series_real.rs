//! The real series in `patches/6.12`: it applies to the pristine Debian
//! source, the generator it adds is `kallsyms-gen/src/*.rs`, and every
//! patch is what `cargo xtask sync-series` (git) writes.
//!
//! The pristine files come from `KSH_KERNEL_SRC` (an unpacked, unpatched
//! tree) when set, else from Debian's tarball (`KSH_KERNEL_TARBALL`,
//! default `/usr/src/linux-source-6.12.tar.xz`); only the files the series
//! touches are copied or extracted. The apply tests are `#[ignore]`d (a
//! fresh clone may have neither) and fail without either; `.ci/run` runs
//! them with `--include-ignored`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::kernel::series::{
    generator_drift, generator_files, series_is_regenerated, Pristine, Series, Variant,
    GENERATOR_DIR,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn series_dir() -> PathBuf {
    root().join("patches/6.12")
}

fn crate_src() -> PathBuf {
    root().join("kallsyms-gen/src")
}

/// A temporary tree holding the pristine versions of every file the series
/// touches (files it creates are absent); fails when no source is here.
fn pristine_sparse_tree(series: &Series) -> tempfile::TempDir {
    let paths = series.touched_paths(Variant::Patched).unwrap();
    let tree = tempfile::tempdir().unwrap();
    if let Some(src) = std::env::var_os("KSH_KERNEL_SRC") {
        let src = PathBuf::from(src);
        assert!(
            src.join("Makefile").is_file(),
            "KSH_KERNEL_SRC={} is no kernel tree",
            src.display()
        );
        for p in &paths {
            let from = src.join(p);
            if from.is_file() {
                let to = tree.path().join(p);
                fs::create_dir_all(to.parent().unwrap()).unwrap();
                fs::copy(&from, &to).unwrap();
            }
        }
        return tree;
    }
    let tarball = std::env::var_os("KSH_KERNEL_TARBALL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/src/linux-source-6.12.tar.xz"));
    assert!(
        tarball.is_file(),
        "no KSH_KERNEL_SRC and no {}: install linux-source-6.12 or point KSH_KERNEL_SRC at an unpacked tree",
        tarball.display()
    );
    // Members are under one top directory (linux-source-6.12/); files the
    // series creates are "not found", which tar reports and we allow.
    let out = Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(tree.path())
        .args([
            "--strip-components=1",
            "--wildcards",
            "--no-wildcards-match-slash",
        ])
        .args(paths.iter().map(|p| format!("*/{p}")))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for l in stderr.lines() {
        assert!(
            l.contains("Not found in archive") || l.contains("Exiting with failure status"),
            "tar: {stderr}"
        );
    }
    assert!(
        tree.path().join("kernel/kallsyms.c").is_file(),
        "tar extracted nothing: {stderr}"
    );
    tree
}

#[test]
fn real_series_loads_with_a_baseline_fixture() {
    let s = Series::load(&series_dir()).unwrap();
    assert!(!s.entries.is_empty());
    let base = s.patches_for(Variant::Baseline);
    assert!(
        !base.is_empty(),
        "the weak-function fixture is a baseline patch"
    );
    assert!(s.patches_for(Variant::Patched).len() > base.len());
    s.generator_patch().unwrap();
    // The fingerprint keys the source cache: it must tell the variants
    // apart, survive a reload, and change with any byte of a patch.
    let patched = s.fingerprint(Variant::Patched).unwrap();
    assert_ne!(patched, s.fingerprint(Variant::Baseline).unwrap());
    let reloaded = Series::load(&series_dir()).unwrap();
    assert_eq!(patched, reloaded.fingerprint(Variant::Patched).unwrap());
    let copy = tempfile::tempdir().unwrap();
    for e in fs::read_dir(series_dir()).unwrap() {
        let p = e.unwrap().path();
        // Files only: mutants/ is not part of the series.
        if p.is_file() {
            fs::copy(&p, copy.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let last = s.patches_for(Variant::Patched).last().unwrap().path.clone();
    let edited = copy.path().join(last.file_name().unwrap());
    let mut bytes = fs::read(&edited).unwrap();
    bytes.push(b'\n');
    fs::write(&edited, bytes).unwrap();
    let changed = Series::load(copy.path()).unwrap();
    assert_ne!(patched, changed.fingerprint(Variant::Patched).unwrap());
    assert_eq!(
        s.fingerprint(Variant::Baseline).unwrap(),
        changed.fingerprint(Variant::Baseline).unwrap(),
        "the baseline does not contain the edited patch"
    );
}

#[test]
#[ignore = "needs Debian's linux-source-6.12 tarball or KSH_KERNEL_SRC; .ci/run runs them"]
fn real_series_applies_to_pristine_source() {
    let s = Series::load(&series_dir()).unwrap();
    for variant in [Variant::Patched, Variant::Baseline] {
        let tree = pristine_sparse_tree(&s);
        s.apply(tree.path(), variant)
            .unwrap_or_else(|e| panic!("{variant:?}: {e:#}"));
        for (name, path) in generator_files(&crate_src()).unwrap() {
            let shipped = tree.path().join(GENERATOR_DIR).join(&name);
            if variant == Variant::Patched {
                assert_eq!(
                    fs::read(&shipped).unwrap(),
                    fs::read(&path).unwrap(),
                    "{name}"
                );
            } else {
                assert!(!shipped.exists(), "{name} in the baseline");
            }
        }
        assert!(tree.path().join("kernel/kallsyms_weak_fixture.c").is_file());
    }
}

#[test]
fn real_series_generator_matches_the_crate() {
    if let Err(e) = generator_drift(&series_dir(), &crate_src()) {
        panic!("{e:#}");
    }
}

#[test]
#[ignore = "needs Debian's linux-source-6.12 tarball or KSH_KERNEL_SRC; .ci/run runs them"]
fn real_series_is_what_sync_series_writes() {
    let tarball = std::env::var_os("KSH_KERNEL_TARBALL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/src/linux-source-6.12.tar.xz"));
    let src = std::env::var_os("KSH_KERNEL_SRC").map(PathBuf::from);
    let pristine = match &src {
        Some(tree) => Pristine::Tree(tree),
        None => {
            assert!(
                tarball.is_file(),
                "no KSH_KERNEL_SRC and no {}",
                tarball.display()
            );
            Pristine::Tarball(&tarball)
        }
    };
    if let Err(e) = series_is_regenerated(&series_dir(), &crate_src(), pristine) {
        panic!("{e:#}");
    }
}
