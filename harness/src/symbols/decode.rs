//! Decode the kallsyms tables the kernel actually carries in `vmlinux`.
//!
//! This is the decisive check for the expectation: it reads
//! `kallsyms_num_syms`, `kallsyms_names`, `kallsyms_token_table`,
//! `kallsyms_token_index`, `kallsyms_offsets` and `kallsyms_relative_base`
//! exactly like `kernel/kallsyms.c` (6.12) does at run time.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::elf::{Binding, ElfImage};
use super::kallsyms::KallsymsOptions;

/// One entry as the kernel decodes it (`kallsyms_expand_symbol` +
/// `kallsyms_sym_address`), at link-time addresses (no KASLR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSymbol {
    /// Address.
    pub addr: u64,
    /// Type char (first byte of the expanded name).
    pub ty: u8,
    /// Name.
    pub name: String,
}

fn sym_addr(img: &ElfImage, name: &str) -> Result<u64> {
    img.symbols
        .iter()
        .find(|s| s.name == name.as_bytes() && s.binding != Binding::Local && s.is_defined())
        .map(|s| s.value)
        .with_context(|| format!("{name} not found in {}", img.path.display()))
}

/// Decode the kallsyms tables of a linked kernel image.
///
/// `absolute_percpu` selects the offset interpretation, as
/// `CONFIG_KALLSYMS_ABSOLUTE_PERCPU` does in the kernel.
pub fn decode_kallsyms(vmlinux: &Path, opts: &KallsymsOptions) -> Result<Vec<DecodedSymbol>> {
    let img = ElfImage::open(vmlinux)?;
    decode_kallsyms_image(&img, opts)
}

/// [`decode_kallsyms`] on an already parsed image.
pub fn decode_kallsyms_image(img: &ElfImage, opts: &KallsymsOptions) -> Result<Vec<DecodedSymbol>> {
    let num_addr = sym_addr(img, "kallsyms_num_syms")?;
    let num = img
        .read_uint_at(num_addr, 4)
        .context("kallsyms_num_syms bytes")? as usize;
    let names = sym_addr(img, "kallsyms_names")?;
    let token_table = sym_addr(img, "kallsyms_token_table")?;
    let token_index = sym_addr(img, "kallsyms_token_index")?;
    let offsets = sym_addr(img, "kallsyms_offsets")?;
    let base_addr = sym_addr(img, "kallsyms_relative_base")?;
    let ptr = if img.is_64 { 8 } else { 4 };
    let mut base = img.read_uint_at(base_addr, ptr).context("relative base")?;
    if base == 0 {
        // Relocatable arm64 images are linked with --no-apply-dynamic-relocs:
        // the word is filled in at boot from a RELATIVE relocation.
        let relative = img.relative_reloc_type();
        if let Some((_, r)) = img
            .all_relocations()
            .find(|(_, r)| r.offset == base_addr && r.r_type == relative)
        {
            base = r.addend as u64;
        }
    }

    let mut tokens = Vec::with_capacity(256);
    for i in 0..256u64 {
        let idx = img
            .read_uint_at(token_index + 2 * i, 2)
            .context("token index")?;
        let mut s = Vec::new();
        let mut a = token_table + idx;
        loop {
            let c = img.read_uint_at(a, 1).context("token table")? as u8;
            if c == 0 {
                break;
            }
            s.push(c);
            a += 1;
        }
        tokens.push(s);
    }

    let mut out = Vec::with_capacity(num);
    let mut off = names;
    for i in 0..num {
        let mut len = img.read_uint_at(off, 1).context("names")?;
        off += 1;
        if len & 0x80 != 0 {
            len = (len & 0x7f) | (img.read_uint_at(off, 1).context("names")? << 7);
            off += 1;
        }
        let data = img.bytes_at(off, len).context("names data")?;
        off += len;
        let mut full = Vec::new();
        for &b in data {
            full.extend_from_slice(&tokens[usize::from(b)]);
        }
        if full.is_empty() {
            bail!("empty symbol {i}");
        }
        let raw = img
            .read_uint_at(offsets + 4 * i as u64, 4)
            .context("offsets")? as u32;
        let addr = if !opts.absolute_percpu {
            base.wrapping_add(u64::from(raw))
        } else if (raw as i32) >= 0 {
            u64::from(raw)
        } else {
            base.wrapping_sub(1)
                .wrapping_sub(i64::from(raw as i32) as u64)
        };
        out.push(DecodedSymbol {
            addr,
            ty: full[0],
            name: String::from_utf8_lossy(&full[1..]).into_owned(),
        });
    }
    Ok(out)
}
