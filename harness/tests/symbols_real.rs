//! Checks of `harness::symbols` against real kernel build directories.
//!
//! Build dirs come from `KSH_BUILD_DIRS` (colon separated). When that is
//! set, every listed dir must exist (CI sets it; a missing build is a
//! failure, not a skip). When unset, `/tmp/kb/x86_64` and `/tmp/kb/arm64`
//! are used if present; with neither the tests fail. They are `#[ignore]`d
//! so a plain `cargo test` shows them as ignored instead of passing having
//! checked nothing; `.ci/run` runs them with `--include-ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::symbols::{
    self, decode_kallsyms, expected_kallsyms, kallsyms::parse_kallsyms_s, kallsyms_from_map,
    kallsyms_options_from_config, parse_map, ElfImage, KallsymsEntry,
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
/// entries, in order, by type and name.
fn assert_same_entries(what: &str, table: &[(u8, String, i64)], expected: &[KallsymsEntry]) {
    assert_eq!(table.len(), expected.len(), "{what}: count");
    for (i, ((ty, name, _), e)) in table.iter().zip(expected).enumerate() {
        assert_eq!(
            (*ty, name.as_str()),
            (e.ty, e.name.as_str()),
            "{what}: entry {i}"
        );
    }
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
        let opts = kallsyms_options_from_config(&dir.join(".config")).unwrap();
        let expected = expected_kallsyms(&vmlinux, &opts).unwrap();
        assert!(expected.len() > 1000, "suspiciously few symbols");

        // (a) The same rules applied to the map the build fed to kallsyms.
        let map_text = std::fs::read_to_string(dir.join("System.map")).unwrap();
        let from_map = kallsyms_from_map(&parse_map(&map_text).unwrap(), &opts);
        assert_eq!(from_map.len(), expected.len());
        for (m, e) in from_map.iter().zip(&expected) {
            assert_eq!(
                (m.addr, m.ty, m.name.as_str()),
                (e.addr, e.ty, e.name.as_str())
            );
        }

        // (b) What the real scripts/kallsyms wrote (order, type, name).
        if let Some(tmp) = last_tmp(&dir) {
            let s_path = format!("{}.kallsyms.S", tmp.display());
            if let Ok(s) = std::fs::read_to_string(&s_path) {
                let table = parse_kallsyms_s(&s).unwrap();
                assert_same_entries(&s_path, &table, &expected);
                println!(
                    "{}: {} matches {} entries",
                    dir.display(),
                    s_path,
                    table.len()
                );
            }
        }

        // (c) Decisive: the tables the kernel itself carries.
        let decoded = decode_kallsyms(&vmlinux, &opts).unwrap();
        assert_eq!(decoded.len(), expected.len(), "kallsyms_num_syms");
        for (i, (d, e)) in decoded.iter().zip(&expected).enumerate() {
            assert_eq!(
                (d.addr, d.ty, d.name.as_str()),
                (e.addr, e.ty, e.name.as_str()),
                "decoded entry {i}"
            );
        }
        let sized = expected.iter().filter(|e| e.size.is_some()).count();
        println!(
            "{}: {} kallsyms entries ({} with st_size), opts {:?}: decoded tables identical",
            dir.display(),
            expected.len(),
            sized,
            opts
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
/// option combination: this covers the rules the build's config did not
/// exercise (text-only selection, `--absolute-percpu`).
#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn rules_match_real_kallsyms_tool_for_all_options() {
    for dir in build_dirs() {
        let tool = required(&dir, "scripts/kallsyms");
        let img = ElfImage::open(&dir.join("vmlinux")).unwrap();
        for (all, pcpu) in [(false, false), (true, false), (false, true), (true, true)] {
            let opts = symbols::KallsymsOptions {
                all_symbols: all,
                absolute_percpu: pcpu,
            };
            let mut cmd = Command::new(&tool);
            if all {
                cmd.arg("--all-symbols");
            }
            if pcpu {
                cmd.arg("--absolute-percpu");
            }
            let out = cmd.arg(dir.join("System.map")).output().unwrap();
            let expected = symbols::expected_kallsyms_image(&img, &opts);
            if !out.status.success() {
                // write_src() refuses offsets it cannot encode. With
                // --absolute-percpu: absolute values above INT_MAX (a
                // kernel whose percpu area is not zero-based: uniprocessor
                // builds). Without it: every symbol is relative to the
                // lowest one, and zero-based percpu symbols of an SMP
                // x86_64 kernel put _text more than UINT_MAX above them.
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("out of range"), "{opts:?}: {err}");
                let absolute_overflow = pcpu
                    && expected
                        .iter()
                        .any(|e| e.percpu_absolute && e.addr > i32::MAX as u64);
                let lowest = expected.iter().map(|e| e.addr).min().unwrap_or(0);
                let highest = expected.iter().map(|e| e.addr).max().unwrap_or(0);
                let relative_overflow = !pcpu && highest - lowest > u32::MAX as u64;
                assert!(
                    absolute_overflow || relative_overflow,
                    "{opts:?}: tool failed but no unencodable entry expected"
                );
                println!(
                    "{}: scripts/kallsyms {opts:?}: refuses (as expected): {}",
                    dir.display(),
                    err.trim()
                );
                continue;
            }
            let table = parse_kallsyms_s(&String::from_utf8(out.stdout).unwrap()).unwrap();
            assert_same_entries(&format!("{opts:?}"), &table, &expected);
            for ((_, name, raw), e) in table.iter().zip(&expected) {
                if e.percpu_absolute {
                    assert_eq!(*raw as u64, e.addr, "{opts:?}: absolute value of {name}");
                }
            }
            println!(
                "{}: scripts/kallsyms {opts:?}: {} entries, {} percpu-absolute, identical",
                dir.display(),
                table.len(),
                expected.iter().filter(|e| e.percpu_absolute).count()
            );
        }
    }
}
