//! Expectations for the kernel's own users of lookups (the caller audit in
//! `patches/6.12/CALLERS.md`): the kprobes blacklist and nested sized
//! symbols. Both are derived from the ELF and the expected kallsyms table
//! with the size-aware lookup rule written out here, independently of the
//! kernel's code.

use ksh_proto::files::{self, BlacklistLine, KprobeKind, KprobeLine, NestedLine, UnsizedLine};

use crate::symbols::{ElfImage, KallsymsEntry};

/// The kallsyms table as the kernel's lookups see it, with the size-aware
/// rule ([`ksh_proto::lookup`]).
pub type HostLookup<'a> = ksh_proto::lookup::Table<'a>;

/// A [`HostLookup`] of `entries` (kallsyms order, limited to the lookup range).
pub fn host_lookup<'a>(entries: impl IntoIterator<Item = &'a KallsymsEntry>) -> HostLookup<'a> {
    HostLookup::new(
        entries
            .into_iter()
            .map(|e| (e.addr, e.name.as_str(), e.size)),
    )
}

/// Link-time address of a symbol of the image, if it has one.
fn sym(img: &ElfImage, name: &str) -> Option<u64> {
    img.symbols
        .iter()
        .find(|s| s.name == name.as_bytes() && s.is_defined())
        .map(|s| s.value)
}

/// The areas `populate_kprobe_blacklist()` walks on each arch (6.12:
/// kernel/kprobes.c and the arch's `arch_populate_kprobe_blacklist()`).
pub fn blacklist_areas(arch: &str) -> &'static [(&'static str, &'static str)] {
    match arch {
        "arm64" => &[
            ("__kprobes_text_start", "__kprobes_text_end"),
            ("__noinstr_text_start", "__noinstr_text_end"),
            ("__entry_text_start", "__entry_text_end"),
            ("__irqentry_text_start", "__irqentry_text_end"),
            ("__hyp_text_start", "__hyp_text_end"),
            ("__hyp_idmap_text_start", "__hyp_idmap_text_end"),
        ],
        _ => &[
            ("__kprobes_text_start", "__kprobes_text_end"),
            ("__noinstr_text_start", "__noinstr_text_end"),
            ("__entry_text_start", "__entry_text_end"),
        ],
    }
}

/// Blacklist entries the kernel must create for vmlinux, as
/// `START END NAME` lines, plus up to two targets per area (its last
/// sized function) that a kprobe must be refused on, as kprobes.txt lines
/// (`ADDR blacklisted NAME`). Also a note for the summary.
pub struct Blacklist {
    pub entries: String,
    pub targets: String,
    pub note: String,
    /// `NOKPROBE_SYMBOL` entries that could not be resolved (an error).
    pub unresolved: Vec<String>,
}

/// The entry `kprobe_add_ksym_blacklist()` makes for an address whose
/// lookup found `f`: `[start, start + size)`.
fn blacklist_entry<'a>(start: u64, f: &ksh_proto::lookup::Found<'a>) -> BlacklistLine<'a> {
    BlacklistLine {
        start,
        end: start + f.size,
        name: f.name,
    }
}

/// The call sites ftrace keeps after boot, named by the size-aware rule:
/// `__mcount_loc` of the image (sorted by `scripts/sorttable` at link
/// time, call sites outside functions zeroed), less those in the init
/// text, which `ftrace_free_init_mem()` drops once init is done. Errors
/// name what could not be read; a site inside no function is one too
/// (sorttable zeroes such sites, so one left means the host's rule and the
/// kernel's disagree).
pub fn ftrace_sites(img: &ElfImage, lookup: &HostLookup) -> Result<String, String> {
    let need = |n: &str| sym(img, n).ok_or_else(|| format!("no {n} symbol"));
    let (lo, hi) = (need("__start_mcount_loc")?, need("__stop_mcount_loc")?);
    let (init_lo, init_hi) = (need("_sinittext")?, need("_einittext")?);
    let mut out = String::new();
    let mut outside = Vec::new();
    for (_, v) in img.pointers_in(lo, hi) {
        // `scripts/sorttable` zeroes the entries of call sites outside any
        // function (overridden weak bodies); ftrace skips them. On a
        // relocatable image their RELATIVE relocations stay, with addend 0.
        let Some(v) = v.filter(|&v| v != 0) else {
            continue;
        };
        if (init_lo..init_hi).contains(&v) {
            continue;
        }
        match lookup.find(v) {
            Some(f) => files::push(
                &mut out,
                &ksh_proto::files::FtraceLine {
                    addr: v,
                    name: f.name,
                },
            ),
            None => outside.push(format!("{v:#x}")),
        }
    }
    if !outside.is_empty() {
        return Err(format!(
            "{} __mcount_loc call sites are inside no function: {}",
            outside.len(),
            outside
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

pub fn blacklist(img: &ElfImage, lookup: &HostLookup, arch: &str) -> Blacklist {
    let mut out = Blacklist {
        entries: String::new(),
        targets: String::new(),
        note: String::new(),
        unresolved: Vec::new(),
    };
    let mut n_entries = 0usize;
    let mut areas = Vec::new();
    for (s, e) in blacklist_areas(arch) {
        let (Some(lo), Some(hi)) = (sym(img, s), sym(img, e)) else {
            continue;
        };
        let mut last_sized: Option<(u64, String)> = None;
        let mut n = 0usize;
        let mut entry = lo;
        while entry < hi {
            match lookup.find(entry) {
                Some(f) => {
                    files::push(&mut out.entries, &blacklist_entry(entry, &f));
                    n += 1;
                    if f.start == entry && f.size > 0 {
                        last_sized = Some((entry, f.name.to_string()));
                    }
                    entry += f.size.max(1);
                }
                None => entry += 1,
            }
        }
        if let Some((a, name)) = last_sized {
            files::push(
                &mut out.targets,
                &KprobeLine {
                    addr: a,
                    kind: KprobeKind::Blacklisted,
                    name: &name,
                },
            );
        }
        n_entries += n;
        areas.push(format!(
            "{} {n}",
            s.trim_start_matches("__").trim_end_matches("_start")
        ));
    }
    // NOKPROBE_SYMBOL() entries: an array of function addresses (on a
    // relocatable arm64 image, RELATIVE relocations fill them in at boot).
    // An entry that resolves to no address or no function is an error, not
    // a smaller list: the check would shrink without a word.
    let mut n_list = 0usize;
    if let (Some(lo), Some(hi)) = (
        sym(img, "__start_kprobe_blacklist"),
        sym(img, "__stop_kprobe_blacklist"),
    ) {
        for (at, v) in img.pointers_in(lo, hi) {
            match v.map(|v| (v, lookup.find(v))) {
                Some((v, Some(f))) => {
                    files::push(&mut out.entries, &blacklist_entry(v, &f));
                    n_list += 1;
                }
                Some((v, None)) => out.unresolved.push(format!(
                    "_kprobe_blacklist entry at {at:#x} points to {v:#x}, inside no function"
                )),
                None => out.unresolved.push(format!(
                    "_kprobe_blacklist entry at {at:#x} is 0 and has no RELATIVE relocation"
                )),
            }
        }
    }
    out.note = format!(
        "kprobes blacklist: {} entries ({}; NOKPROBE_SYMBOL {n_list})",
        n_entries + n_list,
        areas.join(", ")
    );
    out
}

/// Sized symbols nested in sized symbols, as nested.txt lines
/// `ADDR OUTER_START OUTER_SIZE OUTER INNER INNER_START`: ADDR is an address of OUTER
/// outside every symbol nested in it (the first byte after INNER, and
/// OUTER's last byte) that a lookup must attribute to OUTER.
pub fn nested(lookup_entries: &[&KallsymsEntry]) -> (String, usize) {
    let sized: Vec<&KallsymsEntry> = lookup_entries
        .iter()
        .copied()
        .filter(|e| e.size.is_some_and(|s| s > 0))
        .collect();
    let mut starts: Vec<u64> = lookup_entries.iter().map(|e| e.addr).collect();
    starts.sort_unstable();
    starts.dedup();
    let mut out = String::new();
    let mut pairs = 0usize;
    for (k, o) in sized.iter().enumerate() {
        let oend = o.addr + o.size.unwrap();
        for i in sized[k + 1..].iter().take_while(|i| i.addr < oend) {
            let iend = i.addr + i.size.unwrap();
            if i.addr == o.addr || iend > oend {
                continue;
            }
            pairs += 1;
            // Only points whose candidates are the inner symbol's group:
            // no other symbol may start between the inner one and them.
            let next_start = starts
                .get(starts.partition_point(|&a| a <= i.addr))
                .copied()
                .unwrap_or(u64::MAX);
            for p in [iend, oend - 1] {
                if p >= iend && p < oend && p < next_start {
                    files::push(
                        &mut out,
                        &NestedLine {
                            addr: p,
                            outer_start: o.addr,
                            outer_size: o.size.unwrap(),
                            outer: &o.name,
                            inner: &i.name,
                            inner_start: i.addr,
                        },
                    );
                }
            }
        }
    }
    (out, pairs)
}

/// Symbols with no size (assembly without `.size`, linker-script
/// symbols) alone at their address, as unsized.txt lines
/// `ADDR START SIZE NAME`: lookups of their first and last byte must give
/// NAME with an extent up to the next symbol, the rule that did not change.
pub fn unsized_symbols(lookup: &HostLookup) -> String {
    let mut out = String::new();
    for (i, g) in lookup.groups.iter().enumerate() {
        if g.iter().any(|e| e.size.is_some()) {
            continue;
        }
        let start = lookup.addrs[i];
        let Some(f) = lookup.find(start) else {
            continue;
        };
        if f.size == 0 {
            continue;
        }
        for a in [start, start + f.size - 1] {
            files::push(
                &mut out,
                &UnsizedLine {
                    addr: a,
                    start,
                    size: f.size,
                    name: f.name,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::{Binding, SymKind};

    fn e(addr: u64, size: Option<u64>, name: &str) -> KallsymsEntry {
        KallsymsEntry {
            addr,
            ty: b'T',
            nm_type: b'T',
            name: name.into(),
            size,
            binding: Binding::Global,
            kind: SymKind::Func,
            section: Some(".text".into()),
            percpu_absolute: false,
            elf_index: 0,
        }
    }

    #[test]
    fn unsized_and_nested_lines() {
        let t = vec![
            e(0x100, Some(0x20), "a"),
            e(0x140, Some(0x60), "outer"),
            e(0x160, Some(0x10), "inner"),
            e(0x200, None, "asm"),
            e(0x240, Some(0x8), "b"),
        ];
        // The rule itself is tested in ksh_proto::lookup.
        let l = host_lookup(&t);
        assert_eq!(unsized_symbols(&l), "200 200 40 asm\n23f 200 40 asm\n");
        let refs: Vec<&KallsymsEntry> = t.iter().collect();
        let (text, pairs) = nested(&refs);
        assert_eq!(pairs, 1);
        assert_eq!(
            text,
            "170 140 60 outer inner 160\n19f 140 60 outer inner 160\n"
        );
    }
}
