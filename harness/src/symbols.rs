//! Host-side ground truth for kallsyms: what the kernel's symbol table must
//! contain, computed from the built `vmlinux` (and, for the weak-function
//! analysis, from the object files it was linked from).
//!
//! The kernel build derives kallsyms from `nm -n vmlinux | sed -f
//! scripts/mksysmap` fed to `scripts/kallsyms`. We reproduce that pipeline in
//! Rust rather than shelling out to binutils so the harness does not depend
//! on a cross `nm` being installed, and so every entry keeps the ELF facts
//! (`st_size`, binding, section) that the size-aware kallsyms work is about:
//!
//! * [`elf`]: raw ELF sections/symbols/relocations ([`read_elf_symbols`]).
//! * [`nm`]: GNU nm's type letters, visibility and `-n` order; mksysmap.
//! * [`kallsyms`]: `scripts/kallsyms.c` selection and sort rules, and how
//!   each kernel line's options store the addresses.
//! * [`decode`]: the tables the kernel really carries, decoded from vmlinux.
//! * [`gaps`] and [`orphans`]: code no sized symbol covers, and which of it
//!   is the leftover body of an overridden `__weak` function.
//!
//! The top-level entry point is [`expected_kallsyms`].

pub mod decode;
pub mod elf;
pub mod footprint;
pub mod gaps;
pub mod kallsyms;
pub mod nm;
pub mod orphans;

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use self::decode::{decode_kallsyms, decode_sizes, DecodedSymbol};
pub use self::elf::{Binding, ElfImage, ElfSection, ElfSymbol, SymKind, SymbolPlace};
pub use self::gaps::{text_gaps, Gap, GapClass};
pub use self::kallsyms::{
    kallsyms_from_map, kallsyms_options_for_build, kallsyms_options_from_config,
    kernel_of_build_dir, parse_map, KallsymsOptions, MapSymbol, OffsetValue, Offsets,
};
pub use self::nm::{mksysmap_keeps, nm_letter, NmSymbol};
pub use self::orphans::{
    orphan_search, orphan_search_in, orphaned_weak_bodies, Orphan, OrphanSearch,
};

/// One entry of the expected kallsyms table, in table order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KallsymsEntry {
    /// Link-time address (the guest adds the KASLR offset, if any).
    pub addr: u64,
    /// Type char as `/proc/kallsyms` shows it for vmlinux symbols: the nm
    /// letter, or `A` for percpu symbols under `--absolute-percpu`.
    pub ty: u8,
    /// The nm letter before any percpu override.
    pub nm_type: u8,
    /// Symbol name.
    pub name: String,
    /// ELF `st_size`; `None` when zero (assembly without `.size`, linker
    /// script symbols), which `nm -S` also prints without a size.
    pub size: Option<u64>,
    /// ELF binding.
    pub binding: Binding,
    /// ELF symbol type.
    pub kind: SymKind,
    /// Defining section name, if any.
    pub section: Option<String>,
    /// Stored as an absolute value (`--absolute-percpu`).
    pub percpu_absolute: bool,
    /// Index of the symbol in vmlinux's `.symtab`.
    pub elf_index: usize,
}

impl kallsyms::MapLike for (NmSymbol, String) {
    fn addr(&self) -> u64 {
        self.0.addr
    }
    fn ty(&self) -> u8 {
        self.0.letter
    }
    fn name_bytes(&self) -> &[u8] {
        &self.0.sym.name
    }
    fn make_percpu_absolute(&mut self) {
        self.0.letter = b'A';
    }
}

/// Every ELF symbol of a file (`.symtab` order, null symbol excluded).
/// Works for `vmlinux` and for relocatable `.o` files.
pub fn read_elf_symbols(path: &Path) -> Result<Vec<ElfSymbol>> {
    Ok(ElfImage::open(path)?.symbols)
}

/// What `nm -n FILE` prints, in its order (see [`nm`] for the rules).
pub fn nm_symbols(path: &Path) -> Result<Vec<NmSymbol>> {
    Ok(nm::nm_sorted(&ElfImage::open(path)?))
}

/// `nm -n` of an image, filtered by `scripts/mksysmap`: the `System.map`
/// lines (also what `scripts/kallsyms` was fed for the last link).
pub fn system_map_image(img: &ElfImage) -> Vec<NmSymbol> {
    nm::nm_sorted(img)
        .into_iter()
        .filter(|s| nm::mksysmap_keeps(s.line(img.is_64).as_bytes()))
        .collect()
}

/// [`system_map_image`] for a file.
pub fn system_map(vmlinux: &Path) -> Result<Vec<NmSymbol>> {
    Ok(system_map_image(&ElfImage::open(vmlinux)?))
}

/// The kallsyms table the build produces for `vmlinux` (6.12's or 7.3's
/// rules: `opts` from [`kallsyms_options_for_build`]), in table order
/// (the order of `kallsyms_offsets` and of `/proc/kallsyms`).
pub fn expected_kallsyms(vmlinux: &Path, opts: &KallsymsOptions) -> Result<Vec<KallsymsEntry>> {
    Ok(expected_kallsyms_image(&ElfImage::open(vmlinux)?, opts))
}

/// [`expected_kallsyms`] on an already parsed image.
pub fn expected_kallsyms_image(img: &ElfImage, opts: &KallsymsOptions) -> Vec<KallsymsEntry> {
    let input: Vec<(NmSymbol, String)> = system_map_image(img)
        .into_iter()
        .map(|s| {
            let name = s.sym.name_str().into_owned();
            (s, name)
        })
        .collect();
    kallsyms::apply_kallsyms_rules(input, opts)
        .into_iter()
        .map(|((s, name), abs)| KallsymsEntry {
            addr: s.addr,
            ty: s.letter,
            nm_type: if abs {
                nm::nm_letter(&s.sym, &img.sections)
            } else {
                s.letter
            },
            name,
            size: (s.sym.size != 0).then_some(s.sym.size),
            binding: s.sym.binding,
            kind: s.sym.kind,
            section: s.sym.section_name.clone(),
            percpu_absolute: abs,
            elf_index: s.sym.index,
        })
        .collect()
}

/// Address of a defined symbol in a linked image.
///
/// Prefers the global (or weak) definition; a name only defined locally is
/// accepted if all its local definitions agree on the address. Fails if the
/// name is absent or ambiguous, because a silently wrong address would make
/// a guest-side check pass or fail for the wrong reason.
pub fn symbol_address(vmlinux: &Path, name: &str) -> Result<u64> {
    let syms = read_elf_symbols(vmlinux)?;
    symbol_address_in(&syms, name).with_context(|| format!("in {}", vmlinux.display()))
}

/// [`symbol_address`] on already read symbols.
pub fn symbol_address_in(syms: &[ElfSymbol], name: &str) -> Result<u64> {
    let defs: Vec<&ElfSymbol> = syms
        .iter()
        .filter(|s| s.name == name.as_bytes() && s.is_defined())
        .filter(|s| !matches!(s.kind, SymKind::Section | SymKind::File))
        .collect();
    if let Some(g) = defs.iter().find(|s| s.binding == Binding::Global) {
        return Ok(g.value);
    }
    if let Some(w) = defs.iter().find(|s| s.binding == Binding::Weak) {
        return Ok(w.value);
    }
    match defs.split_first() {
        None => bail!("symbol {name} not defined"),
        Some((first, rest)) => {
            if rest.iter().any(|s| s.value != first.value) {
                bail!(
                    "symbol {name} is ambiguous: {} local definitions at different addresses",
                    defs.len()
                );
            }
            Ok(first.value)
        }
    }
}
