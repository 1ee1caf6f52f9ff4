//! kallsyms table sizes read from real builds (KSH_BUILD_DIRS, set by
//! .ci/run): the tables are all there, add up to a plausible footprint, and
//! `kallsyms_offsets` holds exactly one 32-bit entry per symbol; each
//! kernel line's layout is the one its tree (`Makefile`) says: 6.12's
//! labels and `kallsyms_relative_base`, 7.3's sized tables without it.

use std::path::PathBuf;

use harness::symbols::footprint::kallsyms_footprint;
use harness::symbols::{kallsyms_options_for_build, ElfImage, Offsets, SymbolPlace};

fn build_dirs() -> Vec<PathBuf> {
    match std::env::var("KSH_BUILD_DIRS") {
        Ok(v) if !v.is_empty() => v.split(':').map(PathBuf::from).collect(),
        _ => {
            panic!("KSH_BUILD_DIRS is not set: colon-separated kernel build dirs (.ci/run sets it)")
        }
    }
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn tables_of_real_kernels() {
    for dir in build_dirs() {
        let vmlinux = dir.join("vmlinux");
        assert!(vmlinux.is_file(), "{} is missing", vmlinux.display());
        let fp = kallsyms_footprint(&vmlinux).unwrap();
        let get = |n: &str| fp.tables.iter().find(|(t, _)| t == n).map(|(_, b)| *b);
        for t in [
            "kallsyms_names",
            "kallsyms_markers",
            "kallsyms_token_table",
            "kallsyms_offsets",
            "kallsyms_seqs_of_names",
        ] {
            assert!(
                get(t).is_some_and(|b| b > 0),
                "{}: no {t} in {:?}",
                dir.display(),
                fp.tables
            );
        }
        let offsets = get("kallsyms_offsets").unwrap();
        // 4 bytes per symbol, plus at most the alignment before the next table.
        assert!(
            offsets >= 4 * fp.num_syms && offsets < 4 * fp.num_syms + 16,
            "{offsets} vs {}",
            fp.num_syms
        );
        assert!(fp.num_syms > 10_000, "{}", fp.num_syms);
        // The build dirs are patched kernels: the compact size tables are
        // there and cost at most a byte per symbol (0.5-0.6 measured).
        // Only generator tables are counted (a C object named kallsyms_*
        // once was, at 264 KB).
        let sizes = fp.size_tables();
        assert!(
            sizes > 0 && sizes <= fp.num_syms,
            "{}: size tables {sizes} B for {} symbols: {:?}",
            dir.display(),
            fp.num_syms,
            fp.tables
        );
        assert!(
            fp.tables.iter().all(|(t, _)| !t.ends_with("_ops")),
            "{:?}",
            fp.tables
        );
        // The layout of the build's kernel line: 6.12 stores offsets from
        // kallsyms_relative_base and gives no table a `.size`; 7.3 has no
        // relative base and sizes most tables (`.size NAME, . - NAME`),
        // so their ELF sizes are the bytes up to the next table's
        // `.balign 4`.
        let opts = kallsyms_options_for_build(&dir).unwrap();
        let img = ElfImage::open(&vmlinux).unwrap();
        let elf_size = |name: &str| {
            img.symbols
                .iter()
                .filter(|s| s.name == name.as_bytes())
                .filter(
                    |s| matches!(s.place, SymbolPlace::Section(x) if !img.sections[x].is_exec()),
                )
                .map(|s| s.size)
                .max()
        };
        let relative_base = get("kallsyms_relative_base");
        let sized: Vec<&(String, u64)> = fp
            .tables
            .iter()
            .filter(|(t, _)| elf_size(t).is_some_and(|s| s > 0))
            .collect();
        match opts.offsets {
            Offsets::RelativeBase { .. } => {
                assert!(
                    relative_base.is_some(),
                    "{}: no kallsyms_relative_base",
                    dir.display()
                );
                assert!(
                    sized.is_empty(),
                    "{}: sized tables on 6.12: {sized:?}",
                    dir.display()
                );
            }
            Offsets::PcRelative | Offsets::Absolute => {
                assert_eq!(relative_base, None, "{}", dir.display());
                for t in [
                    "kallsyms_names",
                    "kallsyms_markers",
                    "kallsyms_offsets",
                    "kallsyms_size_codes",
                ] {
                    assert!(
                        sized.iter().any(|(n, _)| n == t),
                        "{}: {t} has no .size",
                        dir.display()
                    );
                }
                for (t, bytes) in &sized {
                    let size = elf_size(t).unwrap();
                    assert!(
                        (size..size + 4).contains(bytes),
                        "{}: {t}: {bytes} bytes to the next table, .size {size}",
                        dir.display()
                    );
                }
            }
        }
        eprintln!(
            "{}: {} symbols, {} bytes: {:?}",
            dir.display(),
            fp.num_syms,
            fp.total(),
            fp.tables
        );
    }
}
