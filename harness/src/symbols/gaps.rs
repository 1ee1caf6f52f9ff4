//! Code that no sized symbol covers: the bytes kallsyms (which stores no
//! sizes) attributes to the preceding function although it has ended.
//!
//! A gap starts where the furthest-reaching sized symbol seen so far ends and
//! that symbol is code ([`is_sized_code`]: a sized `STT_FUNC`, or a sized
//! `STT_NOTYPE` as x86 `SYM_CODE_*` assembly emits), and it stops at the next symbol (or the end of
//! the section). Bytes after an *unsized* symbol (assembly without `.size`)
//! are not gaps: nothing claims they end anywhere.

use std::path::{Path, PathBuf};

use anyhow::Result;
use object::elf;
use serde::{Deserialize, Serialize};

use super::elf::{ElfImage, SymKind, SymbolPlace};
use super::nm::nm_sorted;
use super::orphans::{orphaned_weak_bodies, placed_text_sections_in, Orphan, PlacedSection};

/// Why a gap exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GapClass {
    /// The body of an overridden `__weak` function (the first one, if the
    /// gap holds several; see [`Gap::orphans`]).
    OrphanedWeak {
        /// Weak function name.
        name: String,
        /// Object file that defined it.
        object: PathBuf,
    },
    /// Alignment fill: every byte is a padding instruction (x86: `int3`,
    /// `nop` forms; arm64: zero words or `nop`) and the gap is shorter than
    /// the function alignment or than the alignment of its end address.
    Padding,
    /// Code inside an assembly object's input section after a sized symbol
    /// (e.g. local labels after `SYM_FUNC_END`, `SYM_CODE` without size).
    AssemblyTail {
        /// The assembled object.
        object: PathBuf,
    },
    /// Code inside a compiled (C) object's input section that no symbol of
    /// that object names: in practice inline-asm `.subsection 1` code
    /// placed after the object's last function (arm64 `ALTERNATIVE()`
    /// replacement sequences and `asm goto` out-of-line branches).
    UnnamedObjectCode {
        /// The compiled object.
        object: PathBuf,
    },
    /// None of the above (or no build directory to tell).
    Unknown,
}

/// One uncovered range in an executable section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// First uncovered byte (end of `after_symbol`).
    pub start: u64,
    /// Address of the next symbol (or the section end).
    pub end: u64,
    /// The sized code symbol whose end starts the gap.
    pub after_symbol: String,
    /// Output section.
    pub section: String,
    /// Classification.
    pub class: GapClass,
    /// Every orphaned weak body overlapping the gap.
    pub orphans: Vec<Orphan>,
}

impl Gap {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// Never true (gaps are at least one byte); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A symbol that claims a code range: sized, and a function or an
/// assembly `SYM_CODE_START`/`SYM_CODE_END` pair (`STT_NOTYPE` with size).
pub fn is_sized_code(s: &super::elf::ElfSymbol) -> bool {
    s.size > 0 && matches!(s.kind, SymKind::Func | SymKind::NoType | SymKind::GnuIfunc)
}

/// Uncovered ranges of a vmlinux, without classification (all `Unknown`
/// except pure padding).
pub fn raw_text_gaps(img: &ElfImage, function_alignment: u64) -> Vec<Gap> {
    let syms = nm_sorted(img);
    let mut out = Vec::new();
    for sec in img
        .sections
        .iter()
        .filter(|s| s.is_alloc() && s.is_exec() && s.size > 0)
    {
        let sec_end = sec.addr + sec.size;
        let in_sec: Vec<_> = syms
            .iter()
            .filter(|s| {
                s.sym.place != SymbolPlace::Undefined && s.addr >= sec.addr && s.addr <= sec_end
            })
            .collect();
        // (end, is_sized_func, name) of the furthest-reaching claim so far.
        let mut cover: Option<(u64, bool, String)> = None;
        let mut i = 0;
        while i <= in_sec.len() {
            let next = in_sec.get(i).map_or(sec_end, |s| s.addr);
            if let Some((end, true, name)) = &cover {
                if *end < next && *end >= sec.addr {
                    let gap_end = next.min(sec_end);
                    if *end < gap_end {
                        out.push(Gap {
                            start: *end,
                            end: gap_end,
                            after_symbol: name.clone(),
                            section: sec.name.clone(),
                            class: GapClass::Unknown,
                            orphans: Vec::new(),
                        });
                    }
                }
            }
            if i == in_sec.len() {
                break;
            }
            // All symbols at this address; the furthest-reaching one (a sized
            // function on ties, then nm order) is the candidate claim.
            let mut j = i;
            let mut best: Option<(u64, bool, usize)> = None;
            while j < in_sec.len() && in_sec[j].addr == next {
                let s = &in_sec[j];
                let cand = (next + s.sym.size, is_sized_code(&s.sym), j);
                if best.is_none_or(|b| (cand.0, cand.1) > (b.0, b.1)) {
                    best = Some(cand);
                }
                j += 1;
            }
            let (end, is_func, k) = best.expect("group is not empty");
            let cur = cover.as_ref().map(|c| c.0);
            // A symbol at/after the covered end takes over the attribution;
            // a nested one only if it reaches further.
            if cur.is_none_or(|c| next >= c || end > c) {
                cover = Some((end, is_func, in_sec[k].sym.name_str().into_owned()));
            }
            i = j;
        }
    }
    for g in &mut out {
        if is_padding_gap(img, g.start, g.end, function_alignment) {
            g.class = GapClass::Padding;
        }
    }
    out
}

/// Whether `[start, end)` is alignment fill (see [`GapClass::Padding`]).
pub fn is_padding_gap(img: &ElfImage, start: u64, end: u64, function_alignment: u64) -> bool {
    let len = end - start;
    let end_align = if end == 0 {
        u64::MAX
    } else {
        1u64 << end.trailing_zeros()
    };
    if len >= function_alignment.max(1) && len >= end_align {
        return false;
    }
    match img.bytes_at(start, len) {
        Some(b) => is_padding_bytes(img.machine, b),
        None => false,
    }
}

/// Whether the bytes are only padding instructions for this machine.
pub fn is_padding_bytes(machine: u16, b: &[u8]) -> bool {
    match machine {
        elf::EM_X86_64 | elf::EM_386 => {
            let mut i = 0;
            while i < b.len() {
                match x86_pad_len(&b[i..]) {
                    Some(n) => i += n,
                    None => return false,
                }
            }
            true
        }
        elf::EM_AARCH64 => {
            b.len().is_multiple_of(4)
                && b.chunks(4)
                    .all(|w| w == [0, 0, 0, 0] || w == [0x1f, 0x20, 0x03, 0xd5])
        }
        _ => b.iter().all(|&x| x == 0),
    }
}

/// Length of one x86 padding instruction at the start of `b`: `int3`,
/// `nop`, `66 90`, and the `[66|2e]* 0f 1f /0` long nops gas emits.
fn x86_pad_len(b: &[u8]) -> Option<usize> {
    match b.first()? {
        0xcc | 0x90 => return Some(1),
        _ => {}
    }
    let mut i = 0;
    while i < b.len() && (b[i] == 0x66 || b[i] == 0x2e) {
        i += 1;
    }
    if i > 0 && b.get(i) == Some(&0x90) {
        return Some(i + 1);
    }
    if b.get(i) == Some(&0x0f) && b.get(i + 1) == Some(&0x1f) {
        let modrm = *b.get(i + 2)?;
        if (modrm >> 3) & 7 != 0 {
            return None;
        }
        let (md, rm) = (modrm >> 6, modrm & 7);
        let mut n = i + 3;
        if md != 3 && rm == 4 {
            n += 1;
        }
        n += match (md, rm) {
            (0, 5) => 4,
            (1, _) => 1,
            (2, _) => 4,
            _ => 0,
        };
        return (n <= b.len()).then_some(n);
    }
    None
}

/// Function alignment from `.config` (`CONFIG_FUNCTION_ALIGNMENT`), or the
/// 6.12 default for the machine.
pub fn function_alignment(build_dir: Option<&Path>, machine: u16) -> u64 {
    if let Some(d) = build_dir {
        if let Ok(t) = std::fs::read_to_string(d.join(".config")) {
            if let Some(v) = t
                .lines()
                .find_map(|l| l.strip_prefix("CONFIG_FUNCTION_ALIGNMENT="))
                .and_then(|v| v.trim().parse().ok())
            {
                return v;
            }
        }
    }
    match machine {
        elf::EM_X86_64 => 16,
        _ => 4,
    }
}

/// All gaps of a vmlinux, classified. If the directory holding `vmlinux`
/// is its build directory (it has `vmlinux.a`), the object files are used
/// to recognise orphaned weak bodies and assembly tails; otherwise only
/// padding can be told apart.
pub fn text_gaps(vmlinux: &Path) -> Result<Vec<Gap>> {
    let img = ElfImage::open(vmlinux)?;
    let dir = build_dir_of(vmlinux);
    let orphans = match dir {
        Some(dir) => orphaned_weak_bodies(dir)?,
        None => Vec::new(),
    };
    text_gaps_in(&img, dir, &orphans)
}

/// The directory of `vmlinux` if it is the build dir (it has `vmlinux.a`).
pub fn build_dir_of(vmlinux: &Path) -> Option<&Path> {
    vmlinux.parent().filter(|d| {
        d.join("vmlinux.a").is_file() && vmlinux.file_name() == Some("vmlinux".as_ref())
    })
}

/// [`text_gaps`] of a parsed `img`, classified with the objects of its
/// `build_dir` (if any, see [`build_dir_of`]) and its orphaned weak bodies.
pub fn text_gaps_in(
    img: &ElfImage,
    build_dir: Option<&Path>,
    orphans: &[Orphan],
) -> Result<Vec<Gap>> {
    let align = function_alignment(build_dir, img.machine);
    let mut gaps = raw_text_gaps(img, align);
    if let Some(dir) = build_dir {
        let placed = placed_text_sections_in(dir, img)?;
        classify(&mut gaps, orphans, &placed);
    }
    Ok(gaps)
}

/// Apply orphan and input-section knowledge to raw gaps.
pub fn classify(gaps: &mut [Gap], orphans: &[Orphan], placed: &[PlacedSection]) {
    for g in gaps.iter_mut() {
        g.orphans = orphans
            .iter()
            .filter(|o| o.start < g.end && o.end > g.start)
            .cloned()
            .collect();
        if let Some(o) = g.orphans.first() {
            g.class = GapClass::OrphanedWeak {
                name: o.name.clone(),
                object: o.object.clone(),
            };
            continue;
        }
        if g.class == GapClass::Padding {
            continue;
        }
        if let Some(p) = placed
            .iter()
            .find(|p| p.start <= g.start && g.start < p.end)
        {
            g.class = if p.assembly {
                GapClass::AssemblyTail {
                    object: p.object.clone(),
                }
            } else {
                GapClass::UnnamedObjectCode {
                    object: p.object.clone(),
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_padding() {
        assert!(is_padding_bytes(elf::EM_X86_64, &[0xcc, 0xcc, 0x90]));
        assert!(is_padding_bytes(
            elf::EM_X86_64,
            &[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]
        ));
        assert!(is_padding_bytes(
            elf::EM_X86_64,
            &[0x0f, 0x1f, 0x40, 0x00, 0x66, 0x90]
        ));
        assert!(is_padding_bytes(
            elf::EM_X86_64,
            &[0x0f, 0x1f, 0x44, 0x00, 0x00]
        ));
        assert!(!is_padding_bytes(elf::EM_X86_64, &[0x0f, 0x1f, 0x44, 0x00]));
        assert!(!is_padding_bytes(elf::EM_X86_64, &[0xc3]));
    }

    fn gap(start: u64, end: u64, class: GapClass) -> Gap {
        Gap {
            start,
            end,
            after_symbol: "f".into(),
            section: ".text".into(),
            class,
            orphans: vec![],
        }
    }

    #[test]
    fn classification_precedence() {
        let orphan = Orphan {
            name: "w".into(),
            object: "a.o".into(),
            section: ".text".into(),
            start: 0x104,
            end: 0x110,
            preceding_symbol: "f".into(),
            winner_addr: 0x900,
            winner_binding: super::super::Binding::Global,
            bytes_verified: 12,
            bytes_relocated: 0,
        };
        let mut placed = vec![PlacedSection {
            object: "entry.o".into(),
            section: ".text".into(),
            start: 0x200,
            end: 0x300,
            votes: 3,
            assembly: true,
        }];
        let mut gaps = vec![
            gap(0x100, 0x110, GapClass::Padding),
            gap(0x210, 0x220, GapClass::Unknown),
            gap(0x218, 0x220, GapClass::Padding),
            gap(0x400, 0x410, GapClass::Unknown),
        ];
        classify(&mut gaps, std::slice::from_ref(&orphan), &placed);
        assert!(matches!(&gaps[0].class, GapClass::OrphanedWeak { name, .. } if name == "w"));
        assert_eq!(gaps[0].orphans, vec![orphan]);
        assert!(matches!(gaps[1].class, GapClass::AssemblyTail { .. }));
        assert_eq!(gaps[2].class, GapClass::Padding);
        assert_eq!(gaps[3].class, GapClass::Unknown);
        placed[0].assembly = false;
        let mut g = vec![gap(0x210, 0x220, GapClass::Unknown)];
        classify(&mut g, &[], &placed);
        assert!(matches!(g[0].class, GapClass::UnnamedObjectCode { .. }));
    }

    #[test]
    fn arm64_padding() {
        assert!(is_padding_bytes(
            elf::EM_AARCH64,
            &[0, 0, 0, 0, 0x1f, 0x20, 0x03, 0xd5]
        ));
        assert!(!is_padding_bytes(
            elf::EM_AARCH64,
            &[0xc0, 0x03, 0x5f, 0xd6]
        ));
    }
}
