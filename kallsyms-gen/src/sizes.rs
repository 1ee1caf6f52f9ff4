// SPDX-License-Identifier: GPL-2.0-only
//! Not in `scripts/kallsyms.c`: the symbol size tables that `write_src`
//! adds with `--symbol-sizes`, either one `kallsyms_sizes` entry per symbol
//! or, with `--compact-sizes`, the KSZ4 tables.

use crate::out::Out;

/// The `kallsyms_sizes` table: one entry per symbol, in the same order as
/// `kallsyms_offsets`.
///
/// Encoding (for now): one plain 32-bit `.long` per symbol holding the
/// symbol's size in bytes as printed by `nm -S` (0 for symbols without a
/// size column, e.g. zero-size or linker-script symbols), formatted like
/// `kallsyms_offsets`: `\t.long\t%#x\t/* <type><name> */`. A symbol larger
/// than 4 GiB - 1 is rejected before any output is written.
/// This function is the only writer of the table, so a compact encoding
/// can replace it in one place. (`names` is laid out as for [`Out::text`].)
pub(crate) fn write_sizes_table(
    out: &mut Out,
    sizes: &[u64],
    names: &[u8],
    name_start: &[u32],
    name_len: &[u16],
) {
    out.label("kallsyms_sizes");
    for (i, &size) in sizes.iter().enumerate() {
        out.s(b"\t.long\t");
        out.alt_hex(size);
        out.name_comment(names, (name_start[i] as usize, name_len[i] as usize));
    }
    out.end_table("kallsyms_sizes");
    out.s(b"\n");
}

/// The `KSZ4` compact size tables (patches/6.12/SIZES-FORMAT.md), written
/// instead of `kallsyms_sizes` with `--compact-sizes`: a 4-bit code per
/// symbol meaning "ends `gaps[c]` bytes before the next higher address"
/// (14 per-build gap values), "size 0", or "escape" into `kallsyms_size_exc`,
/// with a rank every 256 symbols so an escape is found in O(256).
/// `addrs` are the addresses the kernel computes for each symbol, in table
/// order; `sizes` the `nm -S` sizes (0 when absent).
fn ksz4_tables(addrs: &[u64], sizes: &[u64]) -> (Vec<u8>, [u32; 14], Vec<u32>, LongTable) {
    const NGAPS: usize = 14;
    const ZERO: u8 = 14;
    const ESC: u8 = 15;
    let n = addrs.len();
    // next(i): the next strictly higher address after symbol i.
    let mut next: Vec<Option<u64>> = vec![None; n];
    let mut following: Option<u64> = None;
    let mut i = n;
    while i > 0 {
        let start = {
            let mut j = i - 1;
            while j > 0 && addrs[j - 1] == addrs[i - 1] {
                j -= 1;
            }
            j
        };
        next[start..i].fill(following);
        following = Some(addrs[start]);
        i = start;
    }
    let gap = |i: usize| -> Option<u64> {
        let nx = next[i]?;
        let span = nx - addrs[i];
        (sizes[i] > 0 && span >= sizes[i]).then(|| span - sizes[i])
    };
    // Rule 1: the 14 most frequent gaps, ties by value.
    let mut freq: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for i in 0..n {
        if let Some(g) = gap(i) {
            *freq.entry(g).or_default() += 1;
        }
    }
    let mut by_freq: Vec<(u64, usize)> = freq.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut gaps = [0u32; NGAPS];
    for (slot, (g, _)) in gaps
        .iter_mut()
        .zip(by_freq.iter().filter(|(g, _)| *g <= u64::from(u32::MAX)))
    {
        *slot = *g as u32;
    }
    let used = by_freq.len().min(NGAPS);
    // Rule 2: codes.
    let mut codes = vec![0u8; n.div_ceil(2)];
    let mut rank = Vec::with_capacity(n.div_ceil(256));
    let mut exc = LongTable::default();
    for i in 0..n {
        if i % 256 == 0 {
            rank.push(exc.len() as u32);
        }
        let code = if sizes[i] == 0 {
            ZERO
        } else {
            match gap(i).and_then(|g| gaps[..used].iter().position(|&x| u64::from(x) == g)) {
                Some(c) => c as u8,
                None => {
                    exc.push(sizes[i] as u32);
                    ESC
                }
            }
        };
        codes[i / 2] |= if i % 2 == 0 { code } else { code << 4 };
    }
    (codes, gaps, rank, exc)
}

/// Entries of the previous link pass's `kallsyms_size_exc` as the map lays
/// it out: 4-byte entries from it up to `kallsyms_seqs_of_names` (written
/// after it), or 0 when the map has no tables yet. `name(i)` is symbol
/// `i`'s name without its type. C: `previous_exc_entries()`.
pub(crate) fn previous_exc_entries<'a>(addrs: &[u64], name: impl Fn(usize) -> &'a [u8]) -> usize {
    let (mut exc, mut after) = (0u64, 0u64);
    for (i, &a) in addrs.iter().enumerate() {
        match name(i) {
            b"kallsyms_size_exc" => exc = a,
            b"kallsyms_seqs_of_names" => after = a,
            _ => {}
        }
    }
    if exc != 0 && after > exc {
        // C returns an `unsigned int`: the count is taken modulo 2^32.
        ((after - exc) / 4) as u32 as usize
    } else {
        0
    }
}

/// Writes the KSZ4 tables (`kallsyms_size_codes`, `_gaps`, `_rank`, `_exc`)
/// in place of `kallsyms_sizes`; the format is specified in the kernel
/// series (`patches/6.12/SIZES-FORMAT.md`) and read by
/// `kallsyms_sym_size()`. About half a byte per symbol instead of four.
///
/// `kallsyms_size_exc` is never shorter than `previous_exc` entries (the
/// previous link pass's, [`previous_exc_entries`]; the rest are 0): which
/// sizes escape depends on the gaps, the gaps of the symbols after the
/// tables move with the tables' length, and a length alternating between
/// passes must settle so that the link converges.
pub(crate) fn write_compact_sizes_tables(
    out: &mut Out,
    addrs: &[u64],
    sizes: &[u64],
    previous_exc: usize,
) {
    let (codes, gaps, rank, mut exc) = ksz4_tables(addrs, sizes);
    if exc.len() < previous_exc {
        exc.resize(previous_exc, 0);
    }
    out.label("kallsyms_size_codes");
    for b in &codes {
        out.s(b"\t.byte\t");
        out.alt_hex(u64::from(*b));
        out.s(b"\n");
        out.maybe_flush();
    }
    out.end_table("kallsyms_size_codes");
    out.s(b"\n");
    for (label, values) in [
        ("kallsyms_size_gaps", LongTable::of(&gaps)),
        ("kallsyms_size_rank", LongTable::of(&rank)),
        ("kallsyms_size_exc", exc),
    ] {
        out.label(label);
        for v in values.iter() {
            out.s(b"\t.long\t");
            out.alt_hex(u64::from(v));
            out.s(b"\n");
            out.maybe_flush();
        }
        out.end_table(label);
        out.s(b"\n");
    }
}

/// A table of `.long`s whose tail of zeros is a count, not stored:
/// `kallsyms_size_exc` is padded up to the previous pass's length, which a
/// map can put at billions of entries (C writes them one at a time too).
#[derive(Default)]
struct LongTable {
    values: Vec<u32>,
    len: usize,
}

impl LongTable {
    fn of(values: &[u32]) -> LongTable {
        LongTable {
            values: values.to_vec(),
            len: values.len(),
        }
    }

    /// Appends `v` (before any padding).
    fn push(&mut self, v: u32) {
        debug_assert_eq!(self.len, self.values.len());
        self.values.push(v);
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    /// `Vec::resize` with `fill`, which must be 0: the zeros are counted.
    fn resize(&mut self, len: usize, fill: u32) {
        assert_eq!(fill, 0, "only zeros are counted");
        self.values.truncate(len);
        self.len = len;
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let zeros = self.len - self.values.len();
        self.values
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, zeros))
    }
}
