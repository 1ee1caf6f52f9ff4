//! Decode the kallsyms tables the kernel actually carries in `vmlinux`.
//!
//! This is the decisive check for the expectation: it reads
//! `kallsyms_num_syms`, `kallsyms_names`, `kallsyms_token_table`,
//! `kallsyms_token_index` and `kallsyms_offsets` (with 6.12's
//! `kallsyms_relative_base`) exactly like `kernel/kallsyms.c` of the
//! build's kernel line does at run time, and the size tables of the series
//! (`kallsyms_sizes`, or the compact `kallsyms_size_*` of
//! `patches/*/SIZES-FORMAT.md`) as `kallsyms_sym_size()` does.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::elf::{Binding, ElfImage};
use super::kallsyms::{KallsymsOptions, Offsets};

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
    /// Size from the size tables (`kallsyms_sym_size()`); `None` without
    /// them (a baseline kernel).
    pub size: Option<u64>,
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
/// `opts.offsets` selects the offset interpretation, as the kernel line
/// and `CONFIG_KALLSYMS_ABSOLUTE_PERCPU` (6.12) or `--pc-relative` (7.3)
/// do in the kernel.
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
    let base = match opts.offsets {
        Offsets::RelativeBase { .. } => relative_base(img)?,
        Offsets::PcRelative | Offsets::Absolute => 0,
    };
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
        let entry = offsets + 4 * i as u64;
        let addr = match opts.offsets {
            Offsets::RelativeBase {
                absolute_percpu: false,
            } => base.wrapping_add(u64::from(raw)),
            Offsets::RelativeBase {
                absolute_percpu: true,
            } if (raw as i32) >= 0 => u64::from(raw),
            Offsets::RelativeBase {
                absolute_percpu: true,
            } => base
                .wrapping_sub(1)
                .wrapping_sub(i64::from(raw as i32) as u64),
            // offset_to_ptr(): the entry's own address plus the offset.
            Offsets::PcRelative => entry.wrapping_add(i64::from(raw as i32) as u64),
            Offsets::Absolute => u64::from(raw),
        };
        out.push(DecodedSymbol {
            addr,
            ty: full[0],
            name: String::from_utf8_lossy(&full[1..]).into_owned(),
            size: None,
        });
    }
    let addrs: Vec<u64> = out.iter().map(|d| d.addr).collect();
    if let Some(sizes) = decode_sizes(img, &addrs)? {
        for (d, s) in out.iter_mut().zip(sizes) {
            d.size = Some(s);
        }
    }
    Ok(out)
}

/// 6.12's `kallsyms_relative_base`: a pointer-sized word.
fn relative_base(img: &ElfImage) -> Result<u64> {
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
    Ok(base)
}

/// Gap codes 0..13 of the compact encoding; 14 is size 0, 15 an escape.
const SIZE_GAP_CODES: u64 = 14;

/// The size of every symbol (`addrs`: the decoded addresses, in table
/// order) from the image's size tables, as `kallsyms_sym_size()` computes
/// it: the compact `kallsyms_size_*` tables (`KSZ4`) or the plain
/// `kallsyms_sizes[]`; `None` when the image has neither.
pub fn decode_sizes(img: &ElfImage, addrs: &[u64]) -> Result<Option<Vec<u64>>> {
    let find = |name: &str| sym_addr(img, name).ok();
    let u32_at = |table: u64, i: u64, what: &str| -> Result<u64> {
        img.read_uint_at(table + 4 * i, 4)
            .with_context(|| format!("{what}[{i}] is outside the image"))
    };
    if let Some(codes) = find("kallsyms_size_codes") {
        let gaps = sym_addr(img, "kallsyms_size_gaps")?;
        let rank = sym_addr(img, "kallsyms_size_rank")?;
        let exc = sym_addr(img, "kallsyms_size_exc")?;
        let code = |i: usize| -> Result<u64> {
            let byte = img
                .read_uint_at(codes + (i / 2) as u64, 1)
                .with_context(|| format!("kallsyms_size_codes byte {}", i / 2))?;
            Ok((byte >> (4 * (i % 2))) & 0xf)
        };
        let mut out = Vec::with_capacity(addrs.len());
        for (i, &start) in addrs.iter().enumerate() {
            let size = match code(i)? {
                c if c < SIZE_GAP_CODES => {
                    let Some(&next) = addrs[i + 1..].iter().find(|&&a| a > start) else {
                        bail!("symbol {i}: gap code {c} but no higher address follows");
                    };
                    let gap = u32_at(gaps, c, "kallsyms_size_gaps")?;
                    (next - start)
                        .checked_sub(gap)
                        .with_context(|| format!("symbol {i}: gap {gap} exceeds the distance"))?
                }
                SIZE_GAP_CODES => 0,
                _ => {
                    let block = (i & !255) as u64;
                    let mut n = u32_at(rank, block / 256, "kallsyms_size_rank")?;
                    for j in (i & !255)..i {
                        if code(j)? == 15 {
                            n += 1;
                        }
                    }
                    u32_at(exc, n, "kallsyms_size_exc")?
                }
            };
            out.push(size);
        }
        return Ok(Some(out));
    }
    if let Some(sizes) = find("kallsyms_sizes") {
        return (0..addrs.len() as u64)
            .map(|i| u32_at(sizes, i, "kallsyms_sizes"))
            .collect::<Result<Vec<u64>>>()
            .map(Some);
    }
    Ok(None)
}
