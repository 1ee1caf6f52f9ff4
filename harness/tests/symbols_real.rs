//! Checks of `harness::symbols` against real kernel build directories.
//!
//! Build dirs come from `KSH_BUILD_DIRS` (colon separated). When that is
//! set, every listed dir must exist (CI sets it; a missing build is a
//! failure, not a skip). When unset, `/tmp/kb/x86_64` and `/tmp/kb/arm64`
//! are used if present; with neither the tests fail. They are `#[ignore]`d
//! so a plain `cargo test` shows them as ignored instead of passing having
//! checked nothing; `.ci/run` runs them with `--include-ignored`.
//!
//! Each dir is read as its kernel line builds it (6.12 or 7.3, from its
//! tree's `Makefile`): the options its `link-vmlinux.sh` passes, the
//! layout of `kallsyms_offsets[]` and the tables.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::symbols::kallsyms::{expected_offsets, parse_kallsyms_s, text_address};
use harness::symbols::{
    self, decode_kallsyms, expected_kallsyms, kallsyms_from_map, kallsyms_options_for_build,
    kernel_of_build_dir, parse_map, ElfImage, KallsymsEntry, KallsymsOptions, OffsetValue,
};

/// `dir/rel`, which a finished build dir has: the test fails without it
/// (it would check nothing).
fn required(dir: &Path, rel: &str) -> PathBuf {
    let path = dir.join(rel);
    assert!(
        path.is_file(),
        "{} is missing: a finished build dir has it (no check without it)",
        path.display()
    );
    path
}

fn build_dirs() -> Vec<PathBuf> {
    common::build_dirs(&["vmlinux"])
}

fn nm_tool(img: &ElfImage) -> &'static str {
    match img.machine {
        object::elf::EM_AARCH64 => "aarch64-linux-gnu-nm",
        _ => "nm",
    }
}

fn run_nm(tool: &str, file: &Path) -> String {
    let out = Command::new(tool)
        .arg("-n")
        .arg(file)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(out.status.success(), "{tool} failed on {}", file.display());
    String::from_utf8(out.stdout).expect("nm output is UTF-8")
}

/// The last `.tmp_vmlinuxN` the build ran kallsyms on (its `.syms` is what
/// `System.map` was compared against).
fn last_tmp(dir: &Path) -> Option<PathBuf> {
    (1..=3)
        .rev()
        .map(|n| dir.join(format!(".tmp_vmlinux{n}")))
        .find(|p| Path::new(&format!("{}.syms", p.display())).is_file())
}

/// A table `scripts/kallsyms` wrote (`parse_kallsyms_s`) has the expected
/// entries, in order, by type and name, and each `kallsyms_offsets[]`
/// value is the one the oracle computes for the options' layout
/// (`expected_offsets`, `text` being the map's `_text`).
fn assert_same_entries(
    what: &str,
    table: &[(u8, String, OffsetValue)],
    expected: &[KallsymsEntry],
    values: &[OffsetValue],
) {
    assert_eq!(table.len(), expected.len(), "{what}: count");
    for (i, (((ty, name, v), e), want)) in table.iter().zip(expected).zip(values).enumerate() {
        assert_eq!(
            (*ty, name.as_str(), v),
            (e.ty, e.name.as_str(), want),
            "{what}: entry {i}"
        );
    }
}

/// The `kallsyms_offsets[]` values the oracle expects for `expected`.
fn offsets_of(
    expected: &[KallsymsEntry],
    opts: &KallsymsOptions,
    text: u64,
) -> Result<Vec<OffsetValue>, String> {
    let entries: Vec<(u64, bool)> = expected
        .iter()
        .map(|e| (e.addr, e.percpu_absolute))
        .collect();
    expected_offsets(&entries, opts, text)
}

/// The build's `System.map`, parsed.
fn system_map(dir: &Path) -> Vec<symbols::MapSymbol> {
    let text = std::fs::read_to_string(required(dir, "System.map")).unwrap();
    parse_map(&text).unwrap()
}

fn assert_lines_equal(what: &str, ours: &[String], theirs: &[&str]) {
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a, b, "{what}: first difference at line {}", i + 1);
    }
    assert_eq!(ours.len(), theirs.len(), "{what}: line counts differ");
}

/// Our `nm -n` of `dir/rel` is GNU nm's (the arch's), line for line.
fn nm_matches(dir: &Path, rel: &str) {
    let file = required(dir, rel);
    let img = ElfImage::open(&file).unwrap();
    let ours: Vec<String> = symbols::nm::nm_sorted(&img)
        .iter()
        .map(|s| s.line(img.is_64))
        .collect();
    let real = run_nm(nm_tool(&img), &file);
    let theirs: Vec<&str> = real.lines().collect();
    assert_lines_equal(&format!("nm -n {}", file.display()), &ours, &theirs);
    println!(
        "{}: nm -n {rel}: {} lines identical",
        dir.display(),
        ours.len()
    );
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn nm_emulation_matches_gnu_nm() {
    for dir in build_dirs() {
        nm_matches(&dir, "vmlinux");
    }
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn nm_emulation_matches_gnu_nm_on_objects() {
    // vmlinux.o holds every local label and section kind the compiler and
    // assembler emit, before the final link drops or merges anything.
    for dir in build_dirs() {
        nm_matches(&dir, "vmlinux.o");
    }
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn system_map_matches() {
    for dir in build_dirs() {
        let img = ElfImage::open(&dir.join("vmlinux")).unwrap();
        let ours: Vec<String> = symbols::system_map_image(&img)
            .iter()
            .map(|s| s.line(img.is_64))
            .collect();
        let real = std::fs::read_to_string(dir.join("System.map")).unwrap();
        let theirs: Vec<&str> = real.lines().collect();
        assert_lines_equal("System.map", &ours, &theirs);
        // link-vmlinux.sh guarantees System.map == the last kallsyms input.
        if let Some(tmp) = last_tmp(&dir) {
            let syms = std::fs::read_to_string(format!("{}.syms", tmp.display())).unwrap();
            assert_eq!(syms, real, "System.map differs from {}.syms", tmp.display());
        }
    }
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn expected_kallsyms_matches_build() {
    for dir in build_dirs() {
        let vmlinux = dir.join("vmlinux");
        let kernel = kernel_of_build_dir(&dir).unwrap();
        let opts = kallsyms_options_for_build(&dir).unwrap();
        let expected = expected_kallsyms(&vmlinux, &opts).unwrap();
        assert!(expected.len() > 1000, "suspiciously few symbols");

        // (a) The same rules applied to the map the build fed to kallsyms.
        let map = system_map(&dir);
        let from_map = kallsyms_from_map(&map, &opts);
        assert_eq!(from_map.len(), expected.len());
        for (m, e) in from_map.iter().zip(&expected) {
            assert_eq!(
                (m.addr, m.ty, m.name.as_str()),
                (e.addr, e.ty, e.name.as_str())
            );
        }

        // (b) What the real scripts/kallsyms wrote (order, type, name, and
        // each offset as the kernel line's layout stores it). Every link
        // pass leaves it: its absence is a failure.
        let tmp = last_tmp(&dir)
            .unwrap_or_else(|| panic!("{}: no .tmp_vmlinuxN.syms of a link pass", dir.display()));
        let s_path = format!("{}.kallsyms.S", tmp.display());
        let s = std::fs::read_to_string(&s_path).unwrap_or_else(|e| panic!("{s_path}: {e}"));
        let table = parse_kallsyms_s(&s).unwrap();
        let values = offsets_of(&expected, &opts, text_address(&map)).unwrap();
        assert_same_entries(&s_path, &table, &expected, &values);
        println!(
            "{}: {} matches {} entries and offsets",
            dir.display(),
            s_path,
            table.len()
        );

        // (c) Decisive: the tables the kernel itself carries, addresses
        // and sizes decoded as the kernel line's kallsyms.c does.
        let decoded = decode_kallsyms(&vmlinux, &opts).unwrap();
        assert_eq!(decoded.len(), expected.len(), "kallsyms_num_syms");
        for (i, (d, e)) in decoded.iter().zip(&expected).enumerate() {
            assert_eq!(
                (d.addr, d.ty, d.name.as_str()),
                (e.addr, e.ty, e.name.as_str()),
                "decoded entry {i}"
            );
            // The build dirs are patched kernels: every symbol has its
            // ELF size in the tables (0 for none).
            assert_eq!(
                d.size,
                Some(e.size.unwrap_or(0)),
                "decoded size of entry {i} ({})",
                e.name
            );
        }
        let sized = expected.iter().filter(|e| e.size.is_some()).count();
        println!(
            "{}: Linux {kernel}: {} kallsyms entries ({} with st_size), options {:?}: decoded tables and sizes identical",
            dir.display(),
            expected.len(),
            sized,
            opts.flags()
        );
    }
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn symbol_address_helper() {
    for dir in build_dirs() {
        let vmlinux = dir.join("vmlinux");
        let stext = symbols::symbol_address(&vmlinux, "_stext").unwrap();
        let map = std::fs::read_to_string(dir.join("System.map")).unwrap();
        let line = map.lines().find(|l| l.ends_with(" _stext")).unwrap();
        assert_eq!(format!("{stext:016x}"), line[..16]);
        assert!(symbols::symbol_address(&vmlinux, "no_such_symbol_hopefully").is_err());
    }
}

/// Runs the build's own `scripts/kallsyms` binary on `System.map` with every
/// option set its kernel line knows: this covers the rules and layouts the
/// build's config did not exercise (text-only selection, 6.12's
/// `--absolute-percpu`, 7.3 with and without `--pc-relative`). Where the
/// tool refuses an offset it cannot encode, the oracle must refuse it too.
#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn rules_match_real_kallsyms_tool_for_all_options() {
    for dir in build_dirs() {
        let tool = required(&dir, "scripts/kallsyms");
        let kernel = kernel_of_build_dir(&dir).unwrap();
        let img = ElfImage::open(&dir.join("vmlinux")).unwrap();
        let text = text_address(&system_map(&dir));
        for opts in KallsymsOptions::every_set(kernel).unwrap() {
            let flags = opts.flags();
            let out = Command::new(&tool)
                .args(&flags)
                .arg(dir.join("System.map"))
                .output()
                .unwrap();
            let expected = symbols::expected_kallsyms_image(&img, &opts);
            let values = offsets_of(&expected, &opts, text);
            if !out.status.success() {
                // write_src() refuses offsets it cannot encode. 6.12 with
                // --absolute-percpu: absolute values above INT_MAX (a
                // kernel whose percpu area is not zero-based: uniprocessor
                // builds); without it, every symbol relative to the lowest
                // one: zero-based percpu symbols of an SMP x86_64 kernel put
                // _text more than UINT_MAX above them. 7.3 --pc-relative:
                // an address more than 2 GiB from _text.
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("out of range"), "{flags:?}: {err}");
                let why = values.expect_err("tool failed but the oracle encodes every entry");
                println!(
                    "{}: Linux {kernel}: scripts/kallsyms {flags:?}: refuses (as expected: {why}): {}",
                    dir.display(),
                    err.trim()
                );
                continue;
            }
            let values = values.unwrap_or_else(|e| {
                panic!("{flags:?}: the tool encoded every entry but the oracle says {e}")
            });
            let table = parse_kallsyms_s(&String::from_utf8(out.stdout).unwrap()).unwrap();
            assert_same_entries(&format!("{flags:?}"), &table, &expected, &values);
            println!(
                "{}: Linux {kernel}: scripts/kallsyms {flags:?}: {} entries, {} percpu-absolute, offsets {:?}: identical",
                dir.display(),
                table.len(),
                expected.iter().filter(|e| e.percpu_absolute).count(),
                opts.offsets
            );
        }
    }
}
