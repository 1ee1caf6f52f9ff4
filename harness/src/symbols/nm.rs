//! Emulation of GNU `nm -n` (binutils 2.40) and of `scripts/mksysmap`.
//!
//! The kernel build feeds `nm -n vmlinux | sed -f scripts/mksysmap` into
//! `scripts/kallsyms`, so the expected table can only be right if we see the
//! same lines in the same order as GNU nm prints them. The rules below are
//! transcribed from BFD (`elf_slurp_symbol_table`,
//! `_bfd_elf_make_section_from_shdr`, `bfd_decode_symclass`) and from
//! `nm.c` (`filter_symbols`, `numeric_forward`, `non_numeric_forward`).

use std::cmp::Ordering;
use std::sync::OnceLock;

use object::elf;
use regex::bytes::RegexSet;
use serde::{Deserialize, Serialize};

use super::elf::{Binding, ElfImage, ElfSection, ElfSymbol, SymKind, SymbolPlace};

/// One line of `nm -n` output, with the ELF symbol it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NmSymbol {
    /// The printed value (`st_value`; undefined symbols print blanks).
    pub addr: u64,
    /// The nm type letter (`T`, `t`, `D`, `W`, `U`, ...).
    pub letter: u8,
    /// The ELF symbol behind the line.
    pub sym: ElfSymbol,
}

impl NmSymbol {
    /// The line exactly as GNU nm prints it (without newline).
    pub fn line(&self, is_64: bool) -> String {
        let name = self.sym.name_str();
        if self.sym.place == SymbolPlace::Undefined {
            let w = if is_64 { 16 } else { 8 };
            format!("{:w$} {} {}", "", self.letter as char, name)
        } else if is_64 {
            format!("{:016x} {} {}", self.addr, self.letter as char, name)
        } else {
            format!("{:08x} {} {}", self.addr, self.letter as char, name)
        }
    }
}

// BFD section flags we need (values are irrelevant, only the logic is).
const SEC_ALLOC: u32 = 1 << 0;
const SEC_LOAD: u32 = 1 << 1;
const SEC_READONLY: u32 = 1 << 2;
const SEC_CODE: u32 = 1 << 3;
const SEC_DATA: u32 = 1 << 4;
const SEC_HAS_CONTENTS: u32 = 1 << 5;
const SEC_DEBUGGING: u32 = 1 << 6;

/// BFD's view of an ELF section (`_bfd_elf_make_section_from_shdr`).
///
/// `SEC_SMALL_DATA` is never set by the x86_64/aarch64 backends, so the
/// `g`/`s`/`c` letters cannot occur for the kernels we build.
fn bfd_section_flags(s: &ElfSection) -> u32 {
    let mut f = 0;
    if s.sh_type != elf::SHT_NOBITS {
        f |= SEC_HAS_CONTENTS;
    }
    if s.flags & u64::from(elf::SHF_ALLOC) != 0 {
        f |= SEC_ALLOC;
        if s.sh_type != elf::SHT_NOBITS {
            f |= SEC_LOAD;
        }
    }
    if s.flags & u64::from(elf::SHF_WRITE) == 0 {
        f |= SEC_READONLY;
    }
    if s.flags & u64::from(elf::SHF_EXECINSTR) != 0 {
        f |= SEC_CODE;
    } else if f & SEC_LOAD != 0 {
        f |= SEC_DATA;
    }
    if f & SEC_ALLOC == 0 {
        let n = s.name.as_str();
        if n.starts_with(".debug")
            || n.starts_with(".gnu.debuglto_.debug_")
            || n.starts_with(".gnu.linkonce.wi.")
            || n.starts_with(".zdebug")
            || n.starts_with(".line")
            || n.starts_with(".stab")
            || n == ".gdb_index"
        {
            f |= SEC_DEBUGGING;
        }
    }
    f
}

/// `coff_section_type()`: a few PE section names force a letter even in ELF.
fn coff_section_type(name: &str) -> Option<u8> {
    const STT: [(&str, u8); 4] = [
        (".drectve", b'i'),
        (".edata", b'e'),
        (".idata", b'i'),
        (".pdata", b'p'),
    ];
    for (prefix, c) in STT {
        if let Some(rest) = name.strip_prefix(prefix) {
            match rest.as_bytes().first() {
                None => return Some(c),
                Some(b) if b".$0123456789".contains(b) => return Some(c),
                _ => {}
            }
        }
    }
    None
}

/// `decode_section_type()`
fn decode_section_type(s: &ElfSection) -> u8 {
    let f = bfd_section_flags(s);
    if f & SEC_CODE != 0 {
        return b't';
    }
    if f & SEC_DATA != 0 {
        return if f & SEC_READONLY != 0 { b'r' } else { b'd' };
    }
    if f & SEC_HAS_CONTENTS == 0 {
        return b'b';
    }
    if f & SEC_DEBUGGING != 0 {
        return b'N';
    }
    if f & SEC_HAS_CONTENTS != 0 && f & SEC_READONLY != 0 {
        return b'n';
    }
    b'?'
}

/// The `nm` type letter of a symbol (`bfd_decode_symclass`).
///
/// `sections` are the file's section headers. Symbols whose section index is
/// out of range are treated as absolute, as BFD does.
pub fn nm_letter(sym: &ElfSymbol, sections: &[ElfSection]) -> u8 {
    let weak = sym.binding == Binding::Weak;
    let object = matches!(sym.kind, SymKind::Object | SymKind::Common);
    let section = match sym.place {
        SymbolPlace::Common => return b'C',
        SymbolPlace::Undefined => {
            return match (weak, object) {
                (true, true) => b'v',
                (true, false) => b'w',
                _ => b'U',
            }
        }
        SymbolPlace::Section(i) if i > 0 => sections.get(i),
        _ => None,
    };
    if sym.kind == SymKind::GnuIfunc {
        return b'i';
    }
    if weak {
        return if object { b'V' } else { b'W' };
    }
    if sym.binding == Binding::GnuUnique {
        return b'u';
    }
    let global = match sym.binding {
        Binding::Global => true,
        Binding::Local => false,
        _ => return b'?',
    };
    let c = match section {
        None => b'a',
        Some(s) => coff_section_type(&s.name).unwrap_or_else(|| decode_section_type(s)),
    };
    if global {
        c.to_ascii_uppercase()
    } else {
        c
    }
}

/// Whether GNU nm prints this symbol at all (without `-a`/`--special-syms`).
///
/// Hidden: section and file symbols (`BSF_DEBUGGING`), and the target's
/// "special" symbols: ARM/AArch64 mapping symbols (`$x`, `$d`, `$x.foo`, ...),
/// which `bfd_is_aarch64_special_symbol_name` recognises.
pub fn nm_visible(sym: &ElfSymbol, machine: u16) -> bool {
    if matches!(sym.kind, SymKind::Section | SymKind::File) {
        return false;
    }
    !is_special_symbol(&sym.name, machine)
}

fn is_special_symbol(name: &[u8], machine: u16) -> bool {
    if name.first() != Some(&b'$') || name.len() < 2 {
        return false;
    }
    let tail_ok = matches!(name.get(2), None | Some(b'.'));
    match machine {
        elf::EM_AARCH64 => matches!(name[1], b'x' | b'd' | b'm' | b'f' | b'p') && tail_ok,
        elf::EM_ARM => matches!(name[1], b'a' | b't' | b'd' | b'm' | b'f' | b'p' | b'b') && tail_ok,
        _ => false,
    }
}

/// `numeric_forward()`: undefined first, then by value, then by name with
/// `strcoll` (the kernel build exports `LC_COLLATE=C`, i.e. byte order).
fn numeric_forward(a: &NmSymbol, b: &NmSymbol) -> Ordering {
    let au = a.sym.place == SymbolPlace::Undefined;
    let bu = b.sym.place == SymbolPlace::Undefined;
    match (au, bu) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (true, true) => a.sym.name.cmp(&b.sym.name),
        (false, false) => a
            .addr
            .cmp(&b.addr)
            .then_with(|| a.sym.name.cmp(&b.sym.name)),
    }
}

/// The symbols `nm -n` prints for an ELF image, in its order.
///
/// Ties (same value and name) keep symbol-table order: nm sorts with glibc
/// `qsort`, which is a stable merge sort for arrays of this size on the
/// glibc the kernels are built with.
pub fn nm_sorted(img: &ElfImage) -> Vec<NmSymbol> {
    let mut v: Vec<NmSymbol> = img
        .symbols
        .iter()
        .filter(|s| nm_visible(s, img.machine))
        .map(|s| NmSymbol {
            addr: s.value,
            letter: nm_letter(s, &img.sections),
            sym: s.clone(),
        })
        .collect();
    v.sort_by(numeric_forward);
    v
}

/// The `sed` expressions of `scripts/mksysmap` (6.12), as regexes that
/// *delete* a matching `nm -n` line. Kept verbatim so they apply to the
/// whole line, exactly like sed does.
pub const MKSYSMAP_DELETE: &[&str] = &[
    r" [aNUw] ",
    r" \$",
    r" \.L",
    r" __efistub_",
    r" __pi_\$",
    r" __pi_\.L",
    r" __kvm_nvhe_\$",
    r" __kvm_nvhe_\.L",
    r" __[[:alnum:]]*Thunk_",
    r" __kcfi_typeid_",
    r" __kvm_nvhe___kcfi_typeid_",
    r" __pi___kcfi_typeid_",
    r" __crc_",
    r" __kstrtab_",
    r" __kstrtabns_",
    r"_from_arm$",
    r"_from_thumb$",
    r"_veneer$",
    r" L0$",
    r" _SDA_BASE_$",
    r" _SDA2_BASE_$",
    r"\.long_branch\.",
    r"\.plt_branch\.",
];

/// Whether `scripts/mksysmap` keeps this `nm -n` line (no trailing newline).
pub fn mksysmap_keeps(line: &[u8]) -> bool {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    let set = SET.get_or_init(|| {
        RegexSet::new(MKSYSMAP_DELETE.iter().map(|r| format!("(?-u){r}")))
            .expect("mksysmap regexes are valid")
    });
    !set.is_match(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mksysmap_examples() {
        let keep = |l: &str| mksysmap_keeps(l.as_bytes());
        assert!(keep("ffffffff81000000 T _text"));
        assert!(!keep("0000000000000000 a foo.c"));
        assert!(!keep("                 U foo"));
        assert!(!keep("                 w foo"));
        assert!(keep("ffffffff81000000 W foo"));
        assert!(!keep("ffff800080000000 t $x"));
        assert!(!keep("ffffffff81000000 t .Ltmp1"));
        assert!(!keep("ffffffff81000000 T __efistub_foo"));
        assert!(!keep("ffffffff81000000 T __AArch64ADRPThunk_foo"));
        assert!(keep("ffffffff81000000 T __AArch64ADRP_Thunk_foo"));
        assert!(!keep("ffffffff81000000 R __crc_foo"));
        assert!(!keep("ffffffff81000000 t foo_veneer"));
        assert!(keep("ffffffff81000000 t foo_veneer2"));
        assert!(!keep("ffffffff81000000 t L0"));
        assert!(keep("ffffffff81000000 t L01"));
        assert!(!keep("ffffffff81000000 t a.long_branch.b"));
        assert!(keep("ffffffff81000000 a_b T x"));
    }

    fn sec(index: usize, name: &str, sh_type: u32, flags: u32) -> ElfSection {
        ElfSection {
            index,
            name: name.into(),
            sh_type,
            flags: u64::from(flags),
            addr: 0,
            size: 0,
            offset: 0,
            align: 1,
            info: 0,
            link: 0,
        }
    }

    fn sym(binding: Binding, kind: SymKind, place: SymbolPlace) -> ElfSymbol {
        ElfSymbol {
            index: 1,
            name: b"x".to_vec(),
            value: 0,
            size: 0,
            binding,
            kind,
            other: 0,
            place,
            section_name: None,
        }
    }

    #[test]
    fn letters() {
        use Binding::*;
        use SymKind::*;
        let (a, w, x) = (elf::SHF_ALLOC, elf::SHF_WRITE, elf::SHF_EXECINSTR);
        let secs = vec![
            sec(0, "", elf::SHT_NULL, 0),
            sec(1, ".text", elf::SHT_PROGBITS, a | x),
            sec(2, ".rodata", elf::SHT_PROGBITS, a),
            sec(3, ".data", elf::SHT_PROGBITS, a | w),
            sec(4, ".bss", elf::SHT_NOBITS, a | w),
            sec(5, ".debug_info", elf::SHT_PROGBITS, 0),
            sec(6, ".comment", elf::SHT_PROGBITS, 0),
            sec(7, ".idata$2", elf::SHT_PROGBITS, a | w),
            sec(8, ".notes", elf::SHT_NOTE, a),
        ];
        let l = |b, k, p| nm_letter(&sym(b, k, p), &secs) as char;
        let s = SymbolPlace::Section;
        assert_eq!(l(Global, Func, s(1)), 'T');
        assert_eq!(l(Local, NoType, s(1)), 't');
        assert_eq!(l(Global, Object, s(2)), 'R');
        assert_eq!(l(Local, Object, s(3)), 'd');
        assert_eq!(l(Global, Object, s(4)), 'B');
        assert_eq!(l(Local, NoType, s(5)), 'N');
        assert_eq!(l(Local, NoType, s(6)), 'n');
        assert_eq!(l(Local, NoType, s(7)), 'i');
        assert_eq!(l(Global, NoType, s(8)), 'R');
        assert_eq!(l(Weak, Func, s(1)), 'W');
        assert_eq!(l(Weak, Object, s(3)), 'V');
        assert_eq!(l(Weak, NoType, SymbolPlace::Absolute), 'W');
        assert_eq!(l(Weak, NoType, SymbolPlace::Undefined), 'w');
        assert_eq!(l(Weak, Object, SymbolPlace::Undefined), 'v');
        assert_eq!(l(Global, NoType, SymbolPlace::Undefined), 'U');
        assert_eq!(l(Local, NoType, SymbolPlace::Absolute), 'a');
        assert_eq!(l(Global, NoType, SymbolPlace::Absolute), 'A');
        assert_eq!(l(Global, GnuIfunc, s(1)), 'i');
        assert_eq!(l(GnuUnique, Object, s(3)), 'u');
    }

    #[test]
    fn special_symbols() {
        assert!(is_special_symbol(b"$x", elf::EM_AARCH64));
        assert!(is_special_symbol(b"$d.12", elf::EM_AARCH64));
        assert!(!is_special_symbol(b"$xyz", elf::EM_AARCH64));
        assert!(!is_special_symbol(b"$x", elf::EM_X86_64));
    }
}
