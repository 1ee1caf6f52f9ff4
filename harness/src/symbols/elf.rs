//! Raw ELF reading: sections, symbols, relocations and bytes at addresses.
//!
//! This layer deliberately keeps *everything* the symbol table says (section
//! and file symbols, mapping symbols, undefined symbols): the `nm` emulation
//! and the orphan search each decide for themselves what to drop, and they
//! must be able to explain why a symbol is missing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use object::elf;
use object::read::elf::{FileHeader, Rel as _, Rela as _, SectionHeader, Sym};
use object::{Endianness, FileKind};
use serde::{Deserialize, Serialize};

/// ELF symbol binding (`ELF_ST_BIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Binding {
    /// `STB_LOCAL`
    Local,
    /// `STB_GLOBAL`
    Global,
    /// `STB_WEAK`
    Weak,
    /// `STB_GNU_UNIQUE`
    GnuUnique,
    /// Anything else (OS/processor specific).
    Other(u8),
}

impl Binding {
    fn from_elf(b: u8) -> Self {
        match b {
            elf::STB_LOCAL => Binding::Local,
            elf::STB_GLOBAL => Binding::Global,
            elf::STB_WEAK => Binding::Weak,
            elf::STB_GNU_UNIQUE => Binding::GnuUnique,
            o => Binding::Other(o),
        }
    }
}

/// ELF symbol type (`ELF_ST_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SymKind {
    /// `STT_NOTYPE` (assembly labels, linker-script symbols).
    NoType,
    /// `STT_OBJECT`
    Object,
    /// `STT_FUNC`
    Func,
    /// `STT_SECTION`
    Section,
    /// `STT_FILE`
    File,
    /// `STT_COMMON`
    Common,
    /// `STT_TLS`
    Tls,
    /// `STT_GNU_IFUNC`
    GnuIfunc,
    /// Anything else.
    Other(u8),
}

impl SymKind {
    fn from_elf(t: u8) -> Self {
        match t {
            elf::STT_NOTYPE => SymKind::NoType,
            elf::STT_OBJECT => SymKind::Object,
            elf::STT_FUNC => SymKind::Func,
            elf::STT_SECTION => SymKind::Section,
            elf::STT_FILE => SymKind::File,
            elf::STT_COMMON => SymKind::Common,
            elf::STT_TLS => SymKind::Tls,
            elf::STT_GNU_IFUNC => SymKind::GnuIfunc,
            o => SymKind::Other(o),
        }
    }
}

/// Where a symbol is defined (decoded `st_shndx`, extended indices resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SymbolPlace {
    /// `SHN_UNDEF`
    Undefined,
    /// `SHN_ABS`
    Absolute,
    /// `SHN_COMMON`
    Common,
    /// A real section header index.
    Section(usize),
    /// Another reserved index (`SHN_LOPROC..`), kept verbatim.
    Reserved(u16),
}

/// One section header, with the fields symbol classification needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfSection {
    /// Section header index.
    pub index: usize,
    /// Section name (lossy UTF-8; kernel section names are ASCII).
    pub name: String,
    /// `sh_type`
    pub sh_type: u32,
    /// `sh_flags`
    pub flags: u64,
    /// `sh_addr`
    pub addr: u64,
    /// `sh_size`
    pub size: u64,
    /// `sh_offset`
    pub offset: u64,
    /// `sh_addralign`
    pub align: u64,
    /// `sh_info` (for relocation sections: the section they apply to).
    pub info: u32,
    /// `sh_link`
    pub link: u32,
}

impl ElfSection {
    /// `SHF_ALLOC`: occupies memory at run time.
    pub fn is_alloc(&self) -> bool {
        self.flags & u64::from(elf::SHF_ALLOC) != 0
    }
    /// `SHF_EXECINSTR`: contains code.
    pub fn is_exec(&self) -> bool {
        self.flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
    /// `SHF_WRITE`
    pub fn is_write(&self) -> bool {
        self.flags & u64::from(elf::SHF_WRITE) != 0
    }
    /// `SHT_NOBITS` (bss-like: no file contents).
    pub fn is_nobits(&self) -> bool {
        self.sh_type == elf::SHT_NOBITS
    }
    /// Whether `addr` lies inside `[sh_addr, sh_addr + sh_size)`.
    pub fn contains_addr(&self, addr: u64) -> bool {
        addr >= self.addr && addr - self.addr < self.size
    }
}

/// One symbol table entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfSymbol {
    /// Index in `.symtab` (0 is the null symbol and is never returned).
    pub index: usize,
    /// Raw name bytes (ELF names are not required to be UTF-8).
    pub name: Vec<u8>,
    /// `st_value`: an address in linked files, a section offset in `.o` files.
    pub value: u64,
    /// `st_size` (0 for assembly without `.size` and linker-script symbols).
    pub size: u64,
    /// `ELF_ST_BIND`
    pub binding: Binding,
    /// `ELF_ST_TYPE`
    pub kind: SymKind,
    /// `st_other` (visibility in the low bits).
    pub other: u8,
    /// Decoded `st_shndx`.
    pub place: SymbolPlace,
    /// Name of the defining section, if `place` is a valid section.
    pub section_name: Option<String>,
}

impl ElfSymbol {
    /// The name as text (lossy; kernel symbol names are ASCII).
    pub fn name_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
    /// Defined in a real section (not undefined, absolute or common).
    pub fn section_index(&self) -> Option<usize> {
        match self.place {
            SymbolPlace::Section(i) => Some(i),
            _ => None,
        }
    }
    /// Whether the symbol has a definition (anything but `SHN_UNDEF`).
    pub fn is_defined(&self) -> bool {
        self.place != SymbolPlace::Undefined
    }
}

/// A relocation entry (REL or RELA), as needed to mask relocated bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    /// `r_offset` (section offset in `.o` files, address in linked files).
    pub offset: u64,
    /// Relocation type (`ELF64_R_TYPE`).
    pub r_type: u32,
    /// Symbol index (`ELF64_R_SYM`).
    pub sym: u32,
    /// Addend (0 for REL).
    pub addend: i64,
}

/// A parsed ELF file: header facts, sections, symbols and the file bytes.
///
/// Keeps the bytes so callers can look at code (gap classification, orphan
/// verification) without re-reading the file.
pub struct ElfImage {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// `e_machine` (`EM_X86_64` = 62, `EM_AARCH64` = 183, ...).
    pub machine: u16,
    /// `e_type` (`ET_REL` for `.o`, `ET_EXEC`/`ET_DYN` for `vmlinux`).
    pub e_type: u16,
    /// ELFCLASS64?
    pub is_64: bool,
    /// Little endian?
    pub little_endian: bool,
    /// All section headers, index 0 included.
    pub sections: Vec<ElfSection>,
    /// `.symtab` entries 1.., in table order.
    pub symbols: Vec<ElfSymbol>,
    relocs: Vec<(usize, Vec<Reloc>)>,
    data: Vec<u8>,
}

impl std::fmt::Debug for ElfImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfImage")
            .field("path", &self.path)
            .field("machine", &self.machine)
            .field("sections", &self.sections.len())
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

impl ElfImage {
    /// Read and parse an ELF file (32 or 64 bit, either endianness).
    pub fn open(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(path.to_path_buf(), data)
            .with_context(|| format!("parsing ELF {}", path.display()))
    }

    /// Parse ELF bytes; `path` is only used for messages.
    pub fn parse(path: PathBuf, data: Vec<u8>) -> Result<Self> {
        match FileKind::parse(&*data)? {
            FileKind::Elf64 => parse_generic::<elf::FileHeader64<Endianness>>(path, data),
            FileKind::Elf32 => parse_generic::<elf::FileHeader32<Endianness>>(path, data),
            k => bail!("not an ELF file ({k:?})"),
        }
    }

    /// The raw file bytes.
    pub fn file_bytes(&self) -> &[u8] {
        &self.data
    }

    /// A section by header index.
    pub fn section(&self, index: usize) -> Option<&ElfSection> {
        self.sections.get(index)
    }

    /// The first section with this exact name.
    pub fn section_by_name(&self, name: &str) -> Option<&ElfSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// File contents of a section (`None` for `SHT_NOBITS` or out of range).
    pub fn section_data(&self, index: usize) -> Option<&[u8]> {
        let s = self.sections.get(index)?;
        if s.is_nobits() || s.sh_type == elf::SHT_NULL {
            return None;
        }
        let start = usize::try_from(s.offset).ok()?;
        let end = start.checked_add(usize::try_from(s.size).ok()?)?;
        self.data.get(start..end)
    }

    /// Bytes of the loaded image at virtual address `addr` (linked files).
    ///
    /// The range must lie inside one allocated section with file contents.
    pub fn bytes_at(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let s = self
            .sections
            .iter()
            .find(|s| s.is_alloc() && !s.is_nobits() && s.contains_addr(addr))?;
        if addr + len > s.addr + s.size {
            return None;
        }
        let data = self.section_data(s.index)?;
        let off = usize::try_from(addr - s.addr).ok()?;
        data.get(off..off + usize::try_from(len).ok()?)
    }

    /// The allocated section containing `addr`, if any.
    pub fn section_at(&self, addr: u64) -> Option<&ElfSection> {
        self.sections
            .iter()
            .find(|s| s.is_alloc() && s.contains_addr(addr))
    }

    /// Relocations applying to section `target` (from `.rela*`/`.rel*`
    /// sections whose `sh_info` names it), sorted by offset. Empty for a
    /// section that is not allocated: those are not decoded.
    pub fn relocations_for(&self, target: usize) -> Vec<Reloc> {
        let mut out: Vec<Reloc> = self
            .relocs
            .iter()
            .filter(|(t, _)| *t == target)
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        out.sort_by_key(|r| r.offset);
        out
    }

    /// All relocations of allocated sections with the section index they
    /// apply to (`sh_info`, 0 for dynamic relocations such as `.rela.dyn`).
    pub fn all_relocations(&self) -> impl Iterator<Item = (usize, &Reloc)> {
        self.relocs
            .iter()
            .flat_map(|(t, r)| r.iter().map(move |x| (*t, x)))
    }

    /// This machine's RELATIVE relocation type (`u32::MAX`, matching none,
    /// on a machine the harness does not know).
    pub fn relative_reloc_type(&self) -> u32 {
        match self.machine {
            elf::EM_AARCH64 => elf::R_AARCH64_RELATIVE,
            elf::EM_X86_64 => elf::R_X86_64_RELATIVE,
            _ => u32::MAX,
        }
    }

    /// The pointers stored in `[lo, hi)` (8 bytes each), as the kernel
    /// sees them after boot: a word the link left 0 on a relocatable image
    /// (arm64 links with `--no-apply-dynamic-relocs`) takes its value from
    /// the RELATIVE relocation at that address. `None` for a word with
    /// neither.
    pub fn pointers_in(&self, lo: u64, hi: u64) -> Vec<(u64, Option<u64>)> {
        let relative = self.relative_reloc_type();
        let addends: std::collections::HashMap<u64, u64> = self
            .all_relocations()
            .filter(|(_, r)| r.r_type == relative && lo <= r.offset && r.offset < hi)
            .map(|(_, r)| (r.offset, r.addend as u64))
            .collect();
        let mut out = Vec::new();
        let mut a = lo;
        while a + 8 <= hi {
            let word = self.read_uint_at(a, 8).filter(|&v| v != 0);
            out.push((a, word.or_else(|| addends.get(&a).copied())));
            a += 8;
        }
        out
    }

    /// Read a little/big endian unsigned integer of `len` (1..=8) bytes at
    /// virtual address `addr`.
    pub fn read_uint_at(&self, addr: u64, len: usize) -> Option<u64> {
        let b = self.bytes_at(addr, len as u64)?;
        let mut v = 0u64;
        if self.little_endian {
            for (i, x) in b.iter().enumerate() {
                v |= u64::from(*x) << (8 * i);
            }
        } else {
            for x in b {
                v = (v << 8) | u64::from(*x);
            }
        }
        Some(v)
    }
}

fn parse_generic<Elf: FileHeader<Endian = Endianness>>(
    path: PathBuf,
    data: Vec<u8>,
) -> Result<ElfImage> {
    let d: &[u8] = &data;
    let header = Elf::parse(d)?;
    let endian = header.endian()?;
    let table = header.sections(endian, d)?;

    let mut sections = Vec::with_capacity(table.len());
    for (i, sh) in table.iter().enumerate() {
        let name = table.section_name(endian, sh).unwrap_or(b"");
        sections.push(ElfSection {
            index: i,
            name: String::from_utf8_lossy(name).into_owned(),
            sh_type: sh.sh_type(endian),
            flags: sh.sh_flags(endian).into(),
            addr: sh.sh_addr(endian).into(),
            size: sh.sh_size(endian).into(),
            offset: sh.sh_offset(endian).into(),
            align: sh.sh_addralign(endian).into(),
            info: sh.sh_info(endian),
            link: sh.sh_link(endian),
        });
    }

    let symtab = table.symbols(endian, d, elf::SHT_SYMTAB)?;
    let strings = symtab.strings();
    let mut symbols = Vec::with_capacity(symtab.len());
    for (i, sym) in symtab.iter().enumerate().skip(1) {
        let name = sym.name(endian, strings).unwrap_or(b"").to_vec();
        let shndx = sym.st_shndx(endian);
        let place = match shndx {
            elf::SHN_UNDEF => SymbolPlace::Undefined,
            elf::SHN_ABS => SymbolPlace::Absolute,
            elf::SHN_COMMON => SymbolPlace::Common,
            elf::SHN_XINDEX => match symtab.symbol_section(endian, sym, object::SymbolIndex(i))? {
                Some(idx) => SymbolPlace::Section(idx.0),
                None => SymbolPlace::Undefined,
            },
            s if s < elf::SHN_LORESERVE => SymbolPlace::Section(usize::from(s)),
            s => SymbolPlace::Reserved(s),
        };
        let section_name = match place {
            SymbolPlace::Section(idx) => sections.get(idx).map(|s| s.name.clone()),
            _ => None,
        };
        symbols.push(ElfSymbol {
            index: i,
            name,
            value: sym.st_value(endian).into(),
            size: sym.st_size(endian).into(),
            binding: Binding::from_elf(sym.st_bind()),
            kind: SymKind::from_elf(sym.st_type()),
            other: sym.st_other(),
            place,
            section_name,
        });
    }

    // Only relocations of allocated sections are kept (and those with no
    // target section, such as `.rela.dyn`): what patches the loaded image.
    // Relocations of `.debug_*` sections are most of an object built with
    // debug info (arm64's defconfig) and nothing here reads them.
    let mut relocs = Vec::new();
    for sh in table.iter() {
        let target = sh.sh_info(endian) as usize;
        if target != 0 && sections.get(target).is_some_and(|t| !t.is_alloc()) {
            continue;
        }
        if let Some((rels, _)) = sh.rela(endian, d)? {
            let is_mips64el = false;
            let v = rels
                .iter()
                .map(|r| Reloc {
                    offset: r.r_offset(endian).into(),
                    r_type: r.r_type(endian, is_mips64el),
                    sym: r.r_sym(endian, is_mips64el),
                    addend: r.r_addend(endian).into(),
                })
                .collect();
            relocs.push((target, v));
        } else if let Some((rels, _)) = sh.rel(endian, d)? {
            let v = rels
                .iter()
                .map(|r| Reloc {
                    offset: r.r_offset(endian).into(),
                    r_type: r.r_type(endian),
                    sym: r.r_sym(endian),
                    addend: 0,
                })
                .collect();
            relocs.push((target, v));
        }
    }

    Ok(ElfImage {
        path,
        machine: header.e_machine(endian),
        e_type: header.e_type(endian),
        is_64: header.is_type_64(),
        little_endian: header.is_little_endian(),
        sections,
        symbols,
        relocs,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object built with debug info: its `.text` relocations are kept,
    /// those of `.debug_*` (most of such an object's relocations, and what
    /// made arm64's defconfig slow to read) are not decoded.
    #[test]
    fn relocations_of_debug_sections_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.c");
        let obj = dir.path().join("t.o");
        std::fs::write(
            &src,
            "extern int g(int);\nint f(int x) { return g(x) + 1; }\n",
        )
        .unwrap();
        let st = std::process::Command::new("cc")
            .args(["-g", "-O1", "-c", "-o"])
            .arg(&obj)
            .arg(&src)
            .status()
            .expect("cc (gcc, which the kernel builds need) runs");
        assert!(st.success(), "cc -g -c failed");
        let img = ElfImage::open(&obj).unwrap();
        let rela_debug = img
            .sections
            .iter()
            .filter(|s| s.name.starts_with(".rela.debug_") || s.name.starts_with(".rel.debug_"))
            .count();
        assert!(
            rela_debug > 0,
            "the object has no debug relocations: the test checks nothing"
        );
        let text = img.section_by_name(".text").unwrap().index;
        assert!(
            !img.relocations_for(text).is_empty(),
            "the call to g() in .text has a relocation"
        );
        for (target, _) in img.all_relocations() {
            assert!(
                target == 0 || img.sections[target].is_alloc(),
                "relocation of non-allocated {} decoded",
                img.sections[target].name
            );
        }
    }
}
