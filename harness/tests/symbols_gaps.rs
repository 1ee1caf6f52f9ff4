//! Gaps and orphaned weak bodies on real kernel build directories (same
//! directory selection rules as `symbols_real.rs`: `KSH_BUILD_DIRS` must
//! be complete when set; otherwise `/tmp/kb/{x86_64,arm64}`, and none is a
//! failure). `#[ignore]`d; `.ci/run` runs them with `--include-ignored`.

mod common;

use std::path::PathBuf;

use harness::symbols::{self, gaps, ElfImage, GapClass};

fn build_dirs() -> Vec<PathBuf> {
    common::build_dirs(&["vmlinux", "vmlinux.a"])
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn orphans_are_found_verified_and_inside_gaps() {
    for dir in build_dirs() {
        let vmlinux = dir.join("vmlinux");
        let img = ElfImage::open(&vmlinux).unwrap();
        let orphans = symbols::orphaned_weak_bodies(&dir).unwrap();
        let gaps = symbols::text_gaps(&vmlinux).unwrap();
        assert!(
            !orphans.is_empty(),
            "{}: no orphaned weak bodies",
            dir.display()
        );

        for o in &orphans {
            assert!(o.start < o.end);
            assert!(o.bytes_verified > 0, "{}: nothing verified", o.name);
            assert_ne!(o.start, o.winner_addr);
            // The weak definition really is weak in its object.
            let syms = symbols::read_elf_symbols(&o.object).unwrap();
            assert!(syms.iter().any(|s| s.name == o.name.as_bytes()
                && s.binding == symbols::Binding::Weak
                && s.kind == symbols::SymKind::Func));
            // ... and lies inside a gap classified as an orphan.
            let g = gaps
                .iter()
                .find(|g| g.start <= o.start && o.end <= g.end)
                .unwrap_or_else(|| panic!("{}: orphan {} not inside a gap", dir.display(), o.name));
            assert!(matches!(g.class, GapClass::OrphanedWeak { .. }));
            assert!(g.orphans.iter().any(|x| x.name == o.name));
        }

        // Gap sanity: non-empty ranges in executable sections; padding
        // gaps really are padding bytes.
        for g in &gaps {
            assert!(g.start < g.end);
            assert!(img.section_at(g.start).is_some_and(|s| s.is_exec()));
            if g.class == GapClass::Padding {
                let b = img.bytes_at(g.start, g.len()).unwrap();
                assert!(gaps::is_padding_bytes(img.machine, b));
            }
        }

        let count = |f: fn(&GapClass) -> bool| gaps.iter().filter(|g| f(&g.class)).count();
        println!(
            "{}: {} gaps ({} >= 16 bytes): {} orphaned-weak, {} padding, {} assembly tail, {} unnamed object code, {} unknown; {} orphans",
            dir.display(),
            gaps.len(),
            gaps.iter().filter(|g| g.len() >= 16).count(),
            count(|c| matches!(c, GapClass::OrphanedWeak { .. })),
            count(|c| *c == GapClass::Padding),
            count(|c| matches!(c, GapClass::AssemblyTail { .. })),
            count(|c| matches!(c, GapClass::UnnamedObjectCode { .. })),
            count(|c| *c == GapClass::Unknown),
            orphans.len()
        );
        for o in &orphans {
            println!(
                "  orphan {:#x}..{:#x} {} ({}) shows as {}",
                o.start,
                o.end,
                o.name,
                o.object.strip_prefix(&dir).unwrap_or(&o.object).display(),
                o.preceding_symbol
            );
        }

        if img.machine == object::elf::EM_X86_64 {
            let by = |n: &str| orphans.iter().find(|o| o.name == n);
            let f = by("ftrace_replace_code").expect("ftrace_replace_code orphan");
            assert_eq!(f.preceding_symbol, "ftrace_module_init");
            assert!(
                orphans
                    .iter()
                    .any(|o| o.preceding_symbol == "__x64_sys_swapoff"),
                "an orphan right after __x64_sys_swapoff"
            );
        }
    }
}

#[test]
#[ignore = "needs a built kernel: set KSH_BUILD_DIRS; .ci/run runs them"]
fn lookup_attributes_orphans_to_previous_symbol() {
    for dir in build_dirs() {
        let vmlinux = dir.join("vmlinux");
        let opts = symbols::kallsyms_options_from_config(&dir.join(".config")).unwrap();
        let table = symbols::expected_kallsyms(&vmlinux, &opts).unwrap();
        for o in symbols::orphaned_weak_bodies(&dir).unwrap() {
            // Nothing in the table starts inside the orphan: that is the bug.
            assert!(
                !table.iter().any(|e| e.addr > o.start && e.addr < o.end),
                "{}: a kallsyms entry inside orphan {}",
                dir.display(),
                o.name
            );
            assert_eq!(
                symbols::orphans::lookup_name(&table, o.end - 1).as_deref(),
                Some(o.preceding_symbol.as_str())
            );
        }
    }
}
