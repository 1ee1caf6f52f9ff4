//! Locate input sections of the build's object files inside `vmlinux`, and
//! find the code of overridden `__weak` functions that the link kept
//! without a symbol ("orphaned weak bodies").
//!
//! Why from object files: the final link drops the weak symbol, so vmlinux
//! alone cannot say that bytes after `foo` are really `bar`'s discarded weak
//! twin. The object that defined the weak `bar` still has its symbol and
//! size, and every other symbol of that object's section that survived the
//! link pins where the whole input section went (an input section is placed
//! as one block, so one delta maps all of it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use object::elf;
use object::read::archive::ArchiveFile;
use serde::{Deserialize, Serialize};

use super::elf::{Binding, ElfImage, ElfSymbol, SymKind};
use super::kallsyms::{kallsyms_options_for_build, KallsymsOptions};

/// Overridden weak function body left in vmlinux without a symbol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// The weak function's name (now naming the strong definition).
    pub name: String,
    /// The object file that defined the weak version.
    pub object: PathBuf,
    /// The input section it came from (e.g. `.text`).
    pub section: String,
    /// First byte of the leftover body in vmlinux.
    pub start: u64,
    /// One past the last byte (`start + st_size`).
    pub end: u64,
    /// The kallsyms entry an address inside the orphan resolves to today
    /// (what `%pS` prints: the first alias at the highest address <= start).
    pub preceding_symbol: String,
    /// Address of the definition that won the link.
    pub winner_addr: u64,
    /// Binding of the winner (normally `Global`; `Weak` if another weak
    /// definition was chosen).
    pub winner_binding: Binding,
    /// Bytes compared equal between vmlinux and the object's section.
    pub bytes_verified: u64,
    /// Bytes skipped because a relocation patches them.
    pub bytes_relocated: u64,
}

/// Where one input section (object + section) landed in vmlinux.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedSection {
    /// Object file.
    pub object: PathBuf,
    /// Section name in the object.
    pub section: String,
    /// Start address in vmlinux.
    pub start: u64,
    /// End address (start + size).
    pub end: u64,
    /// Number of surviving symbols that agreed on this placement.
    pub votes: usize,
    /// The object was assembled from a `.S` file (see [`is_assembly_object`]).
    pub assembly: bool,
}

/// Object files that went into vmlinux: the members of the thin archive
/// `vmlinux.a` (all linked whole) followed by the members of the `lib.a`
/// archives (linked on demand without `CONFIG_MODULES`; a member that was
/// not pulled in simply finds no placement), without duplicates.
pub fn linked_objects(build_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = thin_archive_members(&build_dir.join("vmlinux.a"), build_dir)?;
    let mut libs = vec![build_dir.join("lib/lib.a")];
    if let Ok(rd) = std::fs::read_dir(build_dir.join("arch")) {
        for e in rd.flatten() {
            libs.push(e.path().join("lib/lib.a"));
        }
    }
    for lib in libs {
        if lib.is_file() {
            out.extend(thin_archive_members(&lib, build_dir)?);
        }
    }
    // With CONFIG_MODULES the lib.a archives are already inside vmlinux.a.
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

/// Member paths of a (thin) archive, resolved against the archive's own
/// directory or, failing that, the build directory.
pub fn thin_archive_members(archive: &Path, build_dir: &Path) -> Result<Vec<PathBuf>> {
    let data = std::fs::read(archive).with_context(|| format!("reading {}", archive.display()))?;
    let ar =
        ArchiveFile::parse(&*data).with_context(|| format!("parsing {}", archive.display()))?;
    let dir = archive.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for m in ar.members() {
        let m = m?;
        let name = String::from_utf8_lossy(m.name()).into_owned();
        let a = dir.join(&name);
        out.push(if a.is_file() {
            a
        } else {
            build_dir.join(&name)
        });
    }
    Ok(out)
}

/// Whether an object was assembled from a `.S` file: Kbuild records the
/// source in `.<name>.o.cmd` (`source_<obj> := <path>.S`). Without that
/// file, an object without any `STT_FILE` symbol is taken as assembly
/// (compilers always emit one, gas only with `.file`).
pub fn is_assembly_object(obj: &Path, img: Option<&ElfImage>) -> bool {
    if let (Some(dir), Some(name)) = (obj.parent(), obj.file_name()) {
        let cmd = dir.join(format!(".{}.cmd", name.to_string_lossy()));
        if let Ok(text) = std::fs::read_to_string(cmd) {
            if let Some(l) = text.lines().find(|l| l.starts_with("source_")) {
                return l.trim_end().ends_with(".S");
            }
        }
    }
    match img {
        Some(img) => !img.symbols.iter().any(|s| s.kind == SymKind::File),
        None => false,
    }
}

/// Index of vmlinux's defined, named symbols by name.
struct VmIndex<'a> {
    by_name: HashMap<&'a [u8], Vec<&'a ElfSymbol>>,
}

impl<'a> VmIndex<'a> {
    fn new(img: &'a ElfImage) -> Self {
        let mut by_name: HashMap<&[u8], Vec<&ElfSymbol>> = HashMap::new();
        for s in &img.symbols {
            if s.is_defined()
                && !matches!(s.kind, SymKind::Section | SymKind::File)
                && !s.name.is_empty()
            {
                by_name.entry(&s.name).or_default().push(s);
            }
        }
        VmIndex { by_name }
    }
}

/// Find where each section of `obj` went in vmlinux: every named symbol of
/// the section votes for `vmlinux_addr - obj_value` of each same-named
/// vmlinux symbol, weighted 1/k for a name with k homonyms (static
/// functions share names across files); the heaviest delta wins if it is
/// unambiguous. Only consistent deltas accumulate weight.
///
/// Only sections for which `wanted` holds are placed: both callers want
/// code, and the symbols of data sections (most of an object's with
/// `KALLSYMS_ALL`) would otherwise cost a vote each.
fn place_sections(
    obj: &ElfImage,
    vm: &VmIndex<'_>,
    wanted: impl Fn(&super::elf::ElfSection) -> bool,
) -> HashMap<usize, (u64, usize)> {
    let wanted: Vec<bool> = obj.sections.iter().map(&wanted).collect();
    // Per section: delta -> (weight, number of symbols voting).
    let mut votes: HashMap<usize, HashMap<u64, (f64, usize)>> = HashMap::new();
    for s in &obj.symbols {
        let Some(idx) = s.section_index() else {
            continue;
        };
        if !wanted.get(idx).copied().unwrap_or(false) {
            continue;
        }
        if s.name.is_empty() || !super::nm::nm_visible(s, obj.machine) {
            continue; // section/file symbols, `$x`/`$d` mapping symbols
        }
        if let Some(cands) = vm.by_name.get(s.name.as_slice()) {
            let w = 1.0 / cands.len() as f64;
            for c in cands {
                let e = votes
                    .entry(idx)
                    .or_default()
                    .entry(c.value.wrapping_sub(s.value))
                    .or_default();
                e.0 += w;
                e.1 += 1;
            }
        }
    }
    let mut out = HashMap::new();
    for (idx, v) in votes {
        let mut v: Vec<(u64, (f64, usize))> = v.into_iter().collect();
        v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then(a.0.cmp(&b.0)));
        // A name with k homonyms in vmlinux gives 1/k to each candidate:
        // unique names decide, and a tie means we cannot tell.
        let unique = v.len() == 1 || v[0].1 .0 > v[1].1 .0 + 1e-9;
        if unique {
            out.insert(idx, (v[0].0, v[0].1 .1));
        }
    }
    out
}

/// Number of bytes a relocation of this type patches (for masking).
fn reloc_width(machine: u16, r_type: u32) -> u64 {
    match machine {
        elf::EM_X86_64 => match r_type {
            elf::R_X86_64_64
            | elf::R_X86_64_PC64
            | elf::R_X86_64_GOTOFF64
            | elf::R_X86_64_GOTPC64 => 8,
            elf::R_X86_64_16 | elf::R_X86_64_PC16 => 2,
            elf::R_X86_64_8 | elf::R_X86_64_PC8 => 1,
            _ => 4,
        },
        elf::EM_AARCH64 => match r_type {
            elf::R_AARCH64_ABS64 | elf::R_AARCH64_PREL64 => 8,
            elf::R_AARCH64_ABS16 | elf::R_AARCH64_PREL16 => 2,
            _ => 4,
        },
        _ => 8,
    }
}

/// Compare vmlinux bytes at `vm_addr` with `obj` section `idx` bytes at
/// `[off, off+len)`, ignoring bytes patched by relocations. Returns
/// (equal, relocated, different).
fn compare_bytes(
    vm: &ElfImage,
    vm_addr: u64,
    obj: &ElfImage,
    idx: usize,
    off: u64,
    len: u64,
) -> Option<(u64, u64, u64)> {
    let vb = vm.bytes_at(vm_addr, len)?;
    let ob = obj
        .section_data(idx)?
        .get(off as usize..(off + len) as usize)?;
    let mut masked = vec![false; len as usize];
    for r in obj.relocations_for(idx) {
        let w = reloc_width(obj.machine, r.r_type);
        for b in r.offset..r.offset + w {
            if b >= off && b < off + len {
                masked[(b - off) as usize] = true;
            }
        }
    }
    let (mut eq, mut rel, mut ne) = (0, 0, 0);
    for i in 0..len as usize {
        if masked[i] {
            rel += 1;
        } else if vb[i] == ob[i] {
            eq += 1;
        } else {
            ne += 1;
        }
    }
    Some((eq, rel, ne))
}

/// All input sections of the linked objects that could be placed in
/// vmlinux, for executable sections only (what gap classification needs).
/// `vm` is the build's `vmlinux`, parsed.
pub fn placed_text_sections_in(build_dir: &Path, vm: &ElfImage) -> Result<Vec<PlacedSection>> {
    let idx = VmIndex::new(vm);
    let mut out = Vec::new();
    for path in linked_objects(build_dir)? {
        let Ok(obj) = ElfImage::open(&path) else {
            continue;
        };
        let asm = is_assembly_object(&path, Some(&obj));
        for (sec, (delta, votes)) in place_sections(&obj, &idx, |s| s.is_exec()) {
            let s = &obj.sections[sec];
            if s.size == 0 {
                continue;
            }
            let start = delta;
            if vm.section_at(start).is_none_or(|v| !v.is_exec()) {
                continue;
            }
            out.push(PlacedSection {
                object: path.clone(),
                section: s.name.clone(),
                start,
                end: start + s.size,
                votes,
                assembly: asm,
            });
        }
    }
    out.sort_by_key(|p| p.start);
    Ok(out)
}

/// Every overridden weak function body still present in vmlinux.
///
/// For each defined `STB_WEAK` `STT_FUNC` symbol in a linked object whose
/// name vmlinux defines at a *different* address than where this object's
/// copy landed, the range `[start, start + st_size)` is reported after its
/// bytes were checked against the object (relocated bytes excluded; any
/// other difference rejects the candidate).
pub fn orphaned_weak_bodies(build_dir: &Path) -> Result<Vec<Orphan>> {
    Ok(orphan_search(build_dir)?.orphans)
}

/// A weak function that may be overridden but could not be shown to have
/// left a body in vmlinux.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlocated {
    /// Weak function name.
    pub name: String,
    /// Object defining it.
    pub object: PathBuf,
    /// Why: no consistent placement of its input section (no surviving
    /// symbol there, or the section was discarded), or bytes differ.
    pub reason: String,
}

/// Result of [`orphan_search`]: verified orphans, and the candidates that
/// could not be verified (so a caller can tell "none" from "not found").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanSearch {
    /// Verified orphaned weak bodies, by address.
    pub orphans: Vec<Orphan>,
    /// Overridden-looking weak functions whose body was not located.
    pub unlocated: Vec<Unlocated>,
}

/// [`orphaned_weak_bodies`] plus the candidates it had to give up on.
pub fn orphan_search(build_dir: &Path) -> Result<OrphanSearch> {
    let vm = ElfImage::open(&build_dir.join("vmlinux"))?;
    // The table only names what precedes each orphan: without the build's
    // options, every symbol (how offsets are stored does not matter here).
    let opts = kallsyms_options_for_build(build_dir).unwrap_or(KallsymsOptions {
        all_symbols: true,
        ..KallsymsOptions::default()
    });
    let table = super::expected_kallsyms_image(&vm, &opts);
    orphan_search_in(build_dir, &vm, &table)
}

/// [`orphan_search`] with the build's `vmlinux` already parsed and its
/// expected kallsyms `table` (which names what precedes each orphan).
pub fn orphan_search_in(
    build_dir: &Path,
    vm: &ElfImage,
    table: &[super::KallsymsEntry],
) -> Result<OrphanSearch> {
    let idx = VmIndex::new(vm);
    let owned = OwnedCode::new(vm);
    let mut res = OrphanSearch::default();
    for path in linked_objects(build_dir)? {
        let Ok(obj) = ElfImage::open(&path) else {
            continue;
        };
        // Only the sections holding a weak function need a placement.
        let weak_sections: std::collections::HashSet<usize> = obj
            .symbols
            .iter()
            .filter(|s| s.binding == Binding::Weak && s.kind == SymKind::Func)
            .filter_map(|s| s.section_index())
            .collect();
        if weak_sections.is_empty() {
            continue;
        }
        let placed = place_sections(&obj, &idx, |s| weak_sections.contains(&s.index));
        for w in &obj.symbols {
            let Some(sec) = w.section_index() else {
                continue;
            };
            if w.binding != Binding::Weak || w.kind != SymKind::Func || w.size == 0 {
                continue;
            }
            let Some(winner) = idx.by_name.get(w.name.as_slice()).and_then(|c| {
                c.iter()
                    .find(|s| s.binding == Binding::Global)
                    .or_else(|| c.iter().find(|s| s.binding == Binding::Weak))
            }) else {
                continue;
            };
            let mut give_up = |reason: String| {
                res.unlocated.push(Unlocated {
                    name: w.name_str().into_owned(),
                    object: path.clone(),
                    reason,
                })
            };
            let Some(&(delta, _)) = placed.get(&sec) else {
                if winner.binding == Binding::Global {
                    give_up(format!(
                        "section {} not placed in vmlinux",
                        obj.sections[sec].name
                    ));
                }
                continue;
            };
            let start = delta.wrapping_add(w.value);
            if winner.value == start || owned.owns(start) {
                // This copy won, or it is a weak alias of code that a
                // surviving symbol still names (e.g. `cpu_show_meltdown`
                // aliasing `cpu_show_not_affected`).
                continue;
            }
            let Some((eq, rel, ne)) = compare_bytes(vm, start, &obj, sec, w.value, w.size) else {
                give_up(format!("{start:#x}+{:#x} is not in vmlinux", w.size));
                continue;
            };
            if ne != 0 {
                give_up(format!("{ne} of {} bytes differ at {start:#x}", w.size));
                continue;
            }
            res.orphans.push(Orphan {
                name: w.name_str().into_owned(),
                object: path.clone(),
                section: obj.sections[sec].name.clone(),
                start,
                end: start + w.size,
                preceding_symbol: lookup_name(table, start).unwrap_or_default(),
                winner_addr: winner.value,
                winner_binding: winner.binding,
                bytes_verified: eq,
                bytes_relocated: rel,
            });
        }
    }
    res.orphans.sort_by_key(|o| o.start);
    Ok(res)
}

/// Addresses that some vmlinux symbol still names: inside a sized symbol,
/// or exactly at any symbol.
struct OwnedCode {
    starts: Vec<u64>,
    /// (start, running maximum of end) sorted by start.
    sized: Vec<(u64, u64)>,
}

impl OwnedCode {
    fn new(vm: &ElfImage) -> Self {
        let syms: Vec<&ElfSymbol> = vm
            .symbols
            .iter()
            .filter(|s| {
                s.section_index().is_some() && !matches!(s.kind, SymKind::Section | SymKind::File)
            })
            .collect();
        let mut starts: Vec<u64> = syms.iter().map(|s| s.value).collect();
        starts.sort_unstable();
        let mut sized: Vec<(u64, u64)> = syms
            .iter()
            .filter(|s| s.size > 0)
            .map(|s| (s.value, s.value + s.size))
            .collect();
        sized.sort_unstable();
        let mut max = 0;
        for x in &mut sized {
            max = max.max(x.1);
            x.1 = max;
        }
        OwnedCode { starts, sized }
    }

    fn owns(&self, addr: u64) -> bool {
        if self.starts.binary_search(&addr).is_ok() {
            return true;
        }
        let i = self.sized.partition_point(|x| x.0 <= addr);
        i > 0 && self.sized[i - 1].1 > addr
    }
}

/// `get_symbol_pos()` + name: the first entry (in table order) at the
/// highest address <= `addr`.
pub fn lookup_name(table: &[super::KallsymsEntry], addr: u64) -> Option<String> {
    let pos = table.partition_point(|e| e.addr <= addr);
    if pos == 0 {
        return None;
    }
    let a = table[pos - 1].addr;
    let first = table[..pos].partition_point(|e| e.addr < a);
    Some(table[first].name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::KallsymsEntry;

    fn e(addr: u64, name: &str) -> KallsymsEntry {
        KallsymsEntry {
            addr,
            ty: b't',
            nm_type: b't',
            name: name.into(),
            size: None,
            binding: Binding::Local,
            kind: SymKind::Func,
            section: None,
            percpu_absolute: false,
            elf_index: 0,
        }
    }

    #[test]
    fn lookup_takes_first_alias_at_highest_address() {
        let t = vec![e(0x10, "a"), e(0x20, "b1"), e(0x20, "b2"), e(0x30, "c")];
        assert_eq!(lookup_name(&t, 0x0f), None);
        assert_eq!(lookup_name(&t, 0x10).as_deref(), Some("a"));
        assert_eq!(lookup_name(&t, 0x2f).as_deref(), Some("b1"));
        assert_eq!(lookup_name(&t, 0x99).as_deref(), Some("c"));
    }

    #[test]
    fn reloc_widths() {
        assert_eq!(reloc_width(elf::EM_X86_64, elf::R_X86_64_64), 8);
        assert_eq!(reloc_width(elf::EM_X86_64, elf::R_X86_64_PLT32), 4);
        assert_eq!(reloc_width(elf::EM_AARCH64, elf::R_AARCH64_CALL26), 4);
        assert_eq!(reloc_width(elf::EM_AARCH64, elf::R_AARCH64_ABS64), 8);
    }
}
