// SPDX-License-Identifier: GPL-2.0-only
//! Stage 7, `write_src()` of `scripts/kallsyms.c`: the assembler source
//! with every table (`output_label`, `sort_symbols_by_name`); the size
//! tables come from [`crate::sizes`].

use std::process::exit;

use crate::compress::{expand_tokens, TokenTable};
use crate::out::{Out, HEX};
use crate::sizes::{previous_exc_entries, write_compact_sizes_tables, write_sizes_table};
use crate::table::Table;
use crate::{fatal, prefetch, Format, Options};

/// `", 0x%02x"` for every byte value.
const BYTE_ITEMS: [[u8; 6]; 256] = {
    let mut t = [[0u8; 6]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [b',', b' ', b'0', b'x', HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// 6.12's `kallsyms_relative_base`, relocatable through `_text`.
fn write_relative_base(out: &mut Out, t: &Table) {
    out.label("kallsyms_relative_base");
    if t.text <= t.relative_base {
        out.s(b"\tPTR\t_text + ");
        out.alt_hex(t.relative_base - t.text);
    } else {
        out.s(b"\tPTR\t_text - ");
        out.alt_hex(t.text - t.relative_base);
    }
    out.s(b"\n\n");
}

/// An entry of `kallsyms_offsets` as the C tool prints it.
enum Offset {
    /// `.long %#x`: 6.12's offset from the relative base, or 7.3's address
    /// truncated to 32 bits.
    Hex(u32),
    /// 7.3's `--pc-relative`: `.long _text - . + (%d)`.
    PcRelative(i32),
}

/// 7.3's entry of `kallsyms_offsets` for symbol `i`, or the C tool's error
/// message when it does not fit.
fn symbol_offset_73(t: &Table, i: usize, pc_relative: bool) -> Result<Offset, String> {
    let addr = t.addr[i];
    if !pc_relative {
        return Ok(Offset::Hex(addr as u32));
    }
    let offset = addr.wrapping_sub(t.text) as i64;
    i32::try_from(offset).map(Offset::PcRelative).map_err(|_| {
        format!(
            "kallsyms failure: relative symbol value {} out of range",
            if addr == 0 {
                "0".to_string()
            } else {
                format!("{addr:#x}")
            }
        )
    })
}

/// 6.12's value stored in `kallsyms_offsets` for symbol `i`, or the C
/// tool's error message when it does not fit.
fn symbol_offset(t: &Table, i: usize, absolute_percpu: bool) -> Result<u32, String> {
    let addr = t.addr[i];
    let (offset, overflow) = if !absolute_percpu {
        let o = addr.wrapping_sub(t.relative_base) as i64;
        (o, o < 0 || o > u32::MAX as i64)
    } else if t.percpu_absolute[i] {
        let o = addr as i64;
        (o, o < 0 || o > i32::MAX as i64)
    } else {
        let o = t.relative_base.wrapping_sub(addr).wrapping_sub(1) as i64;
        (o, o < i32::MIN as i64 || o >= 0)
    };
    if overflow {
        return Err(format!(
            "kallsyms failure: {} symbol value {} out of range in relative mode",
            if t.percpu_absolute[i] {
                "absolute"
            } else {
                "relative"
            },
            if addr == 0 {
                "0".to_string()
            } else {
                format!("{addr:#x}")
            }
        ));
    }
    Ok(offset as u32)
}

/// C's `sort_symbols_by_name()`: symbol positions ordered by name
/// (`strcmp`), then address, then position; the table is in address order,
/// so that is name, then position.
///
/// Faster than C's qsort + strcmp: an MSD sort on 28-byte chunks of the
/// names packed with the position into a pair of `u128`s, so that nearly
/// all work is plain integer sorting; only runs with an equal chunk go one
/// level deeper. (Kernel names often share long prefixes, `__pfx_` and
/// subsystem names, hence the long chunk.)
///
/// `key(i)` is the (start, length) of symbol `i`'s name in `buf`, which must
/// have 28 readable bytes after every name.
fn sort_symbols_by_name(n: usize, buf: &[u8], key: impl Fn(usize) -> (usize, usize)) -> Vec<u32> {
    const CHUNK: usize = 28;
    // Bytes `depth * CHUNK ..` of the name (zero padded), then the position.
    let chunk = |i: usize, depth: usize| -> (u128, u128) {
        let (ks, kl) = key(i);
        let from = (depth * CHUNK).min(kl);
        let rem = (kl - from).min(CHUNK);
        let mut b = [0u8; 32];
        b[..CHUNK].copy_from_slice(&buf[ks + from..ks + from + CHUNK]);
        b[rem..].fill(0);
        let hi = u128::from_be_bytes(b[..16].try_into().unwrap());
        let lo = u128::from_be_bytes(b[16..].try_into().unwrap());
        (hi, lo | i as u128)
    };
    let pos = |v: &(u128, u128)| v.1 as u32 as usize;
    let mut order: Vec<(u128, u128)> = (0..n).map(|i| chunk(i, 0)).collect();
    order.sort_unstable();
    // Runs whose elements are sorted by their chunk at `depth`.
    let mut stack = vec![(0usize, n, 0usize)];
    while let Some((start, end, depth)) = stack.pop() {
        let mut run = start;
        while run < end {
            let (hi, lo) = (order[run].0, order[run].1 >> 32);
            let mut e = run + 1;
            while e < end && order[e].0 == hi && order[e].1 >> 32 == lo {
                e += 1;
            }
            // Equal chunks and a key that ends inside it (zero padding; names
            // contain no NUL) mean identical names: C then orders by address,
            // then position. The table is in address order, so that is the
            // position order the run already has.
            if e - run > 1 && key(pos(&order[run])).1 >= (depth + 1) * CHUNK {
                for v in &mut order[run..e] {
                    *v = chunk(pos(v), depth + 1);
                }
                order[run..e].sort_unstable();
                stack.push((run, e, depth + 1));
            }
            run = e;
        }
    }
    order.iter().map(|v| pos(v) as u32).collect()
}

/// How far ahead (in name order) `write_src` prefetches the names, and the
/// per-symbol entries needed to locate them.
const PREFETCH_DISTANCE: usize = 16;
const PREFETCH_INDEX_DISTANCE: usize = 48;

/// Emits the assembler source. Unlike the C tool, every fatal condition is
/// checked before the first byte is written, and output is streamed in
/// large chunks.
pub(crate) fn write_src(t: &mut Table, tt: &TokenTable, opts: &Options) {
    let n = t.count();

    // Fatal checks first (the C tool exits half way through its output).
    for i in 0..n {
        // There cannot be any symbol of length zero; only lengths that fit
        // in up-to-two-byte ULEB128 are supported (both impossible here).
        if t.slot[i].len == 0 {
            fatal("kallsyms failure: unexpected zero symbol length");
        }
        if t.slot[i].len > 0x3FFF {
            fatal("kallsyms failure: unexpected huge symbol length");
        }
    }
    let mut offsets: Vec<Offset> = Vec::with_capacity(n);
    for i in 0..n {
        let entry = match opts.format {
            Format::Linux6_12 => symbol_offset(t, i, opts.absolute_percpu).map(Offset::Hex),
            Format::Linux7_3 => symbol_offset_73(t, i, opts.pc_relative),
        };
        match entry {
            Ok(o) => offsets.push(o),
            Err(msg) => {
                eprintln!("{msg}");
                exit(1);
            }
        }
    }
    if opts.symbol_sizes {
        if let Some(i) = t.size.iter().position(|&s| s > u32::MAX as u64) {
            fatal(&format!(
                "symbol {} size {:#x} does not fit in kallsyms_sizes",
                String::from_utf8_lossy(&t.sym(i)[1..]),
                t.size[i]
            ));
        }
    }

    // The original names (C: expand_symbol + strcpy). `name_len` is the C
    // string length (printf "%s" stops at a NUL, which can only be a NUL
    // type byte at the start).
    let exp = expand_tokens(tt);
    let mut names = std::mem::take(&mut t.names);
    let name_start = &t.name_start[..n];
    let name_len: Vec<u16> = (0..n)
        .map(|i| match names[name_start[i] as usize] {
            0 => 0,
            _ => t.name_len[i],
        })
        .collect();
    // Sort keys of symbols with a NUL type byte (see below) go after the
    // names; then 32 bytes of slack for word-sized copies.
    let mut nul_type_keys: Vec<(u32, u32, u16)> = Vec::new();
    for (i, _) in name_len.iter().enumerate().filter(|(_, &l)| l == 0) {
        let rest = &t.sym(i)[1..];
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        nul_type_keys.push((i as u32, names.len() as u32, end as u16));
        names.extend_from_slice(&rest[..end]);
    }
    names.resize(names.len() + 32, 0);
    let names = names;
    let name = |i: usize| -> (usize, usize) { (name_start[i] as usize, name_len[i] as usize) };

    let mut out = Out::new(opts.format);
    if opts.format == Format::Linux6_12 {
        out.s(b"#include <asm/bitsperlong.h>\n\
            #if BITS_PER_LONG == 64\n\
            #define PTR .quad\n\
            #define ALGN .balign 8\n\
            #else\n\
            #define PTR .long\n\
            #define ALGN .balign 4\n\
            #endif\n");
    }
    out.s(b"\t.section .rodata, \"a\"\n");

    out.label("kallsyms_num_syms");
    out.s(b"\t.long\t");
    out.dec(n as u32 as u64);
    out.s(b"\n\n");

    // table of offset markers, that give the offset in the compressed
    // stream every 256 symbols
    let mut markers: Vec<u32> = Vec::with_capacity(n.div_ceil(256));
    out.label("kallsyms_names");
    let mut off: u32 = 0;
    for i in 0..n {
        if i & 0xFF == 0 {
            markers.push(off);
        }
        let len = t.slot[i].len;
        // Encode length with ULEB128.
        if len <= 0x7F {
            out.s(b"\t.byte ");
            out.byte_hex(len as u8);
            off = off.wrapping_add(len + 1);
        } else {
            out.s(b"\t.byte ");
            out.byte_hex(((len & 0x7F) | 0x80) as u8);
            out.s(b", ");
            out.byte_hex(((len >> 7) & 0x7F) as u8);
            off = off.wrapping_add(len + 2);
        }
        let sym = t.sym(i);
        out.buf.reserve(sym.len() * 6);
        for &c in sym {
            out.buf.extend_from_slice(&BYTE_ITEMS[c as usize]);
        }
        out.name_comment(&names, name(i));
    }
    out.end_table("kallsyms_names");
    out.s(b"\n");

    out.label("kallsyms_markers");
    for &m in &markers {
        out.s(b"\t.long\t");
        out.dec(m as u64);
        out.s(b"\n");
    }
    out.end_table("kallsyms_markers");
    out.s(b"\n");
    drop(markers);

    out.label("kallsyms_token_table");
    let mut best_idx = [0u32; 256];
    let mut off: u32 = 0;
    for (i, e) in exp.iter().enumerate() {
        best_idx[i] = off;
        out.s(b"\t.asciz\t\"");
        out.cstr(e);
        out.s(b"\"\n");
        let slen = e.iter().position(|&c| c == 0).unwrap_or(e.len());
        off = off.wrapping_add(slen as u32 + 1);
    }
    out.end_table("kallsyms_token_table");
    out.s(b"\n");

    out.label("kallsyms_token_index");
    for &v in &best_idx {
        out.s(b"\t.short\t");
        out.dec(v as u64); // "%d" of a value < 2^31
        out.s(b"\n");
    }
    out.s(b"\n");
    out.maybe_flush();

    out.label("kallsyms_offsets");
    for (i, o) in offsets.iter().enumerate() {
        match *o {
            Offset::Hex(v) => {
                out.s(b"\t.long\t");
                out.alt_hex(v as u64);
            }
            Offset::PcRelative(v) => {
                out.s(b"\t.long\t_text - . + (");
                if v < 0 {
                    out.s(b"-");
                }
                out.dec(v.unsigned_abs() as u64);
                out.s(b")");
            }
        }
        out.name_comment(&names, name(i));
    }
    out.end_table("kallsyms_offsets");
    out.s(b"\n");
    drop(offsets);

    if opts.format == Format::Linux6_12 {
        write_relative_base(&mut out, t);
    }

    if opts.symbol_sizes && opts.compact_sizes {
        let previous_exc = previous_exc_entries(&t.addr, |i| {
            let (start, len) = name(i);
            // The text is the type, then the name.
            names.get(start + 1..start + len).unwrap_or(&[])
        });
        write_compact_sizes_tables(&mut out, &t.addr, &t.size, previous_exc);
    } else if opts.symbol_sizes {
        write_sizes_table(&mut out, &t.size, &names, name_start, &name_len);
    }

    // sort_symbols_by_name (C: compare_names on the restored names, then
    // address, then position in the address-sorted table).
    //
    // C quirk replicated: the name is restored with strcpy(), so for a
    // symbol whose type byte is NUL only that NUL is copied, and the bytes
    // compared after it are still the compressed ones.
    let key = |i: usize| -> (usize, usize) {
        let (s, l) = name(i);
        if l > 0 {
            return (s + 1, l - 1); // the shown name stops before any NUL
        }
        let k = nul_type_keys
            .binary_search_by_key(&(i as u32), |e| e.0)
            .unwrap_or(0);
        let (_, ks, kl) = nul_type_keys[k];
        (ks as usize, kl as usize)
    };
    let order = sort_symbols_by_name(n, &names, key);
    out.label("kallsyms_seqs_of_names");
    for (k, &i) in order.iter().enumerate() {
        // Name order is random in memory: prefetch ahead of use.
        if let Some(&j) = order.get(k + PREFETCH_INDEX_DISTANCE) {
            prefetch(name_start, j as usize);
            prefetch(&name_len, j as usize);
        }
        if let Some(&j) = order.get(k + PREFETCH_DISTANCE) {
            prefetch(&names, name_start[j as usize] as usize);
        }
        out.s(b"\t.byte ");
        out.byte_hex((i >> 16) as u8);
        out.s(b", ");
        out.byte_hex((i >> 8) as u8);
        out.s(b", ");
        out.byte_hex(i as u8);
        out.name_comment(&names, name(i as usize));
    }
    out.s(b"\n");
    out.flush();
}
