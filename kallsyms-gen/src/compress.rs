// SPDX-License-Identifier: GPL-2.0-only
//! Stage 6, `optimize_token_table()` of `scripts/kallsyms.c`: the greedy
//! byte-pair compression of the symbol names into at most 256 tokens
//! (`build_initial_token_table`, `find_best_token`, `compress_symbols`,
//! `optimize_result`), and `expand_symbol()` of every token.

use crate::prefetch;
use crate::table::{Slot, Table, ARENA_SLACK};

/// The result of the compression: `best_table`/`best_table_len` of the C tool.
pub(crate) struct TokenTable {
    pub(crate) best: [[u8; 2]; 256],
    pub(crate) best_len: [u8; 256],
}

#[inline]
fn pair_index(a: u8, b: u8) -> usize {
    a as usize | (b as usize) << 8
}

/// `token_profit` of the C tool: occurrences of each pair `a | b << 8`.
struct PairCounts {
    /// Fixed-size, so indexing by a pair needs no bounds check.
    profit: Box<[i32; 0x10000]>,
    /// Maximum of each 256-entry block of `profit` (valid unless dirty).
    block_max: [i32; 256],
    block_dirty: [bool; 256],
}

impl PairCounts {
    /// build_initial_token_table: counts every pair of every symbol.
    fn new(t: &Table) -> Self {
        let mut profit: Box<[i32; 0x10000]> = vec![0; 0x10000].try_into().unwrap();
        for i in 0..t.count() {
            for w in t.sym(i).windows(2) {
                profit[pair_index(w[0], w[1])] += 1;
            }
        }
        PairCounts {
            profit,
            block_max: [0; 256],
            block_dirty: [true; 256],
        }
    }

    /// find_best_token: the first pair with the maximum profit, if any > 0.
    /// (C scans all 65536 counts; here only blocks whose counts changed
    /// since the last call are rescanned.)
    fn find_best_token(&mut self) -> Option<usize> {
        for blk in 0..256 {
            if self.block_dirty[blk] {
                let block = &self.profit[blk << 8..(blk + 1) << 8];
                self.block_max[blk] = block.iter().copied().fold(i32::MIN, i32::max);
                self.block_dirty[blk] = false;
            }
        }
        let max = self.block_max.iter().copied().fold(i32::MIN, i32::max);
        if max <= 0 {
            return None;
        }
        let blk = self.block_max.iter().position(|&m| m == max)?;
        let pos = self.profit[blk << 8..(blk + 1) << 8]
            .iter()
            .position(|&v| v == max)?;
        Some(blk << 8 | pos)
    }

    #[inline]
    fn add(&mut self, a: u8, b: u8, n: i32) {
        self.profit[pair_index(a, b)] += n;
        self.block_dirty[b as usize] = true;
    }
}

/// Greedy byte-pair compression, with exactly the C tool's result:
/// every byte used in a symbol is a 1-byte token; free slots from 255 down
/// get the most frequent adjacent pair (ties → lowest `a | b << 8`), replaced
/// left to right without overlap in every symbol.
///
/// Faster than C: the C tool compares every symbol byte by byte for each of
/// up to 256 tokens and re-counts all pairs of every symbol it changes.
/// Here each step scans the whole (packed) arena for the pair 32 bytes at a
/// time ([`find_pair`]), so only the symbols that contain it are looked at,
/// and the counts are updated only for the pairs that change around each
/// replacement, which gives the same counts as C's `forget_symbol` +
/// `learn_symbol`.
pub(crate) fn optimize_token_table(t: &mut Table) -> TokenTable {
    let n = t.count();
    let mut tt = TokenTable {
        best: [[0; 2]; 256],
        best_len: [0; 256],
    };

    // insert_real_symbols_in_table
    for i in 0..n {
        for &c in t.sym(i) {
            tt.best[c as usize][0] = c;
            tt.best_len[c as usize] = 1;
        }
    }
    let mut counts = PairCounts::new(t);
    let mut map = SymbolMap::new(t);
    let mut live = t.arena.len() - ARENA_SLACK;

    // optimize_result: using the '\0' symbol last ...
    for idx in (0..256usize).rev() {
        if tt.best_len[idx] != 0 {
            continue;
        }
        let Some(best) = counts.find_best_token() else {
            break;
        };
        let (a, b) = ((best & 0xff) as u8, (best >> 8) as u8);
        tt.best_len[idx] = 2;
        tt.best[idx] = [a, b];
        live -= compress_symbols(t, &map, &mut counts, a, b, idx as u8);
        // Faster than C: keep the symbols densely packed as they shrink, so
        // that the scans read little else.
        if live < (t.arena.len() - ARENA_SLACK) / 8 * 7 {
            t.compact();
            map = SymbolMap::new(t);
        }
    }
    tt
}

/// Positions `p` in `base..base + 32` with `sym[p] == a && sym[p + 1] == b`
/// and `p + 1 < len`, as bit `p - base` of the result. Reads
/// `sym[base..base + 33]`. A fixed amount of work, so that the length of a
/// symbol costs no mispredicted branches.
#[inline(always)]
fn pair_bits(sym: &[u8], base: usize, len: usize, a: u8, b: u8) -> u64 {
    let bytes: &[u8; 33] = sym[base..base + 33].try_into().unwrap();
    // Pairs starting at base .. base + valid are inside the symbol.
    let valid = (len - 1 - base).min(32);
    pair_bits_32(bytes, a, b) & ((1u64 << valid) - 1)
}

/// `pair_bits` without the length limit, with SSE2 (always present on
/// x86_64): two 16-byte compares for `a`, two for `b` one byte further.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pair_bits_32(bytes: &[u8; 33], a: u8, b: u8) -> u64 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned loads read
    // bytes[0..32] and bytes[1..33], inside the array.
    unsafe {
        let p = bytes.as_ptr();
        let load = |i: usize| _mm_loadu_si128(p.add(i) as *const __m128i);
        let (va, vb) = (_mm_set1_epi8(a as i8), _mm_set1_epi8(b as i8));
        let half = |i: usize| {
            let m = _mm_and_si128(_mm_cmpeq_epi8(load(i), va), _mm_cmpeq_epi8(load(i + 1), vb));
            _mm_movemask_epi8(m) as u32 as u64
        };
        half(0) | half(16) << 16
    }
}

/// Portable `pair_bits_32` (SWAR, 8 positions per step): an exact zero-byte
/// test on `(w ^ aaaa…) | (w' ^ bbbb…)`, where `w'` is the word `w` shifted
/// by one byte, gives the high bit of each matching byte, and a
/// multiplication gathers those 8 bits into one byte.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn pair_bits_32(bytes: &[u8; 33], a: u8, b: u8) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let (pa, pb) = (
        0x0101_0101_0101_0101 * a as u64,
        0x0101_0101_0101_0101 * b as u64,
    );
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let mut bits = 0;
    for step in 0..4 {
        let i = step * 8;
        let z = (word(i) ^ pa) | (word(i + 1) ^ pb);
        let high = !(((z & LO7) + LO7) | z | LO7);
        bits |= ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) << i;
    }
    bits
}

/// Finds the symbol that holds an arena position (its own bytes or the
/// ones it no longer uses, up to the next symbol's start). Symbols lie in
/// the arena in table order; only `Table::compact` moves them. For every
/// 32-byte block of the arena: the symbol that holds its first byte.
struct SymbolMap {
    block_sym: Vec<u32>,
}

impl SymbolMap {
    const BLOCK: usize = 32;

    fn new(t: &Table) -> Self {
        let blocks = t.arena.len().div_ceil(Self::BLOCK);
        let mut block_sym = Vec::with_capacity(blocks);
        let mut s = 0;
        for k in 0..blocks {
            while s + 1 < t.count() && t.slot[s + 1].start as usize <= k * Self::BLOCK {
                s += 1;
            }
            block_sym.push(s as u32);
        }
        SymbolMap { block_sym }
    }

    /// The symbol whose part of the arena holds `pos`.
    #[inline]
    fn symbol_at(&self, slot: &[Slot], pos: usize) -> usize {
        let mut s = self.block_sym[pos / Self::BLOCK] as usize;
        while s + 1 < slot.len() && slot[s + 1].start as usize <= pos {
            s += 1;
        }
        s
    }
}

/// Replaces pair `(a, b)` by token `x` in every symbol that contains it;
/// returns by how many bytes the symbols shrank.
fn compress_symbols(
    t: &mut Table,
    map: &SymbolMap,
    counts: &mut PairCounts,
    a: u8,
    b: u8,
    x: u8,
) -> usize {
    let mut removed = 0;
    // Symbols lie in the arena in table order, each followed by the bytes
    // it no longer uses; pairs found there or across two symbols are not
    // in a symbol and are skipped. After the first pair found in a symbol
    // (replace_pair handles the others), the scan goes on at the next one.
    let end = t.arena.len() - ARENA_SLACK;
    let mut from = 0;
    while let Some(found) = find_pair(&t.arena, from, end, a, b) {
        let s = map.symbol_at(&t.slot, found);
        // Most hits are in the early steps, where the next ones are close
        // by: fetch the map and slot entries about 2 KB ahead of use.
        prefetch(&map.block_sym, (found + 2048) / SymbolMap::BLOCK);
        prefetch(&t.slot, s + 64);
        let Slot { start, len } = t.slot[s];
        let (st, len) = (start as usize, len as usize);
        if found + 1 < st + len {
            let w = replace_pair(&mut t.arena[st..], found - st, len, counts, a, b, x);
            removed += len - w;
            t.slot[s].len = w as u32;
        }
        from = t.slot.get(s + 1).map_or(end, |next| next.start as usize);
    }
    removed
}

/// The first position `p >= from` with `buf[p] == a && buf[p + 1] == b`,
/// if it is below `end`. Reads up to `buf[end + 32]`.
#[inline]
fn find_pair(buf: &[u8], from: usize, end: usize, a: u8, b: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { find_pair_avx2(buf, from, end, a, b) };
    }
    let mut p = from;
    while p < end {
        let bits = pair_bits_32(buf[p..p + 33].try_into().unwrap(), a, b);
        if bits != 0 {
            let q = p + bits.trailing_zeros() as usize;
            return (q < end).then_some(q);
        }
        p += 32;
    }
    None
}

/// `find_pair` with AVX2: 32 positions per compare of `a` and of `b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn find_pair_avx2(buf: &[u8], from: usize, end: usize, a: u8, b: u8) -> Option<usize> {
    use std::arch::x86_64::*;
    let mut p = from;
    while p < end {
        let bytes: &[u8; 33] = buf[p..p + 33].try_into().unwrap();
        // SAFETY: the caller checked for AVX2; the unaligned loads read
        // bytes[0..32] and bytes[1..33].
        let bits = unsafe {
            let at_a = _mm256_loadu_si256(bytes.as_ptr() as *const __m256i);
            let at_b = _mm256_loadu_si256(bytes.as_ptr().add(1) as *const __m256i);
            let is_a = _mm256_cmpeq_epi8(at_a, _mm256_set1_epi8(a as i8));
            let is_b = _mm256_cmpeq_epi8(at_b, _mm256_set1_epi8(b as i8));
            _mm256_movemask_epi8(_mm256_and_si256(is_a, is_b)) as u32
        };
        if bits != 0 {
            let q = p + bits.trailing_zeros() as usize;
            return (q < end).then_some(q);
        }
        p += 32;
    }
    None
}

/// Replaces pair `(a, b)` by token `x` in the symbol `sym[..len]`, whose
/// first occurrence is at `first`; returns the new length. The slice
/// extends into the following symbols (or the arena slack) so that whole
/// words can be read.
///
/// Replace left to right, without overlap, and update the counts of exactly
/// the pairs that change (same result as C's forget_symbol + learn_symbol
/// of the whole symbol). All writes go to positions at or before the
/// occurrence being handled, so the masks (computed ahead) and the bytes
/// after it are still the original ones. Faster than C: all occurrences in
/// 32 positions are found at once (see pair_bits), and runs between them
/// are moved with memmove.
#[inline]
fn replace_pair(
    sym: &mut [u8],
    first: usize,
    len: usize,
    counts: &mut PairCounts,
    a: u8,
    b: u8,
    x: u8,
) -> usize {
    let mut r = 0; // read position: end of the last occurrence
    let mut w = 0; // write position
    let mut replaced = 0;
    let mut base = first;
    while base + 1 < len {
        let mut m = pair_bits(sym, base, len, a, b);
        while m != 0 {
            let p = base + m.trailing_zeros() as usize;
            m &= m - 1;
            if p < r {
                continue; // overlaps the previous occurrence ("aaa")
            }
            if p > r {
                // Copy the run before the occurrence; its first char
                // follows the previous token: (x, c) is a new pair.
                if r > 0 {
                    counts.add(x, sym[r], 1);
                }
                if w != r {
                    sym.copy_within(r..p, w);
                }
                w += p - r;
                // old (c, a) -> new (c, x)
                counts.add(sym[p - 1], a, -1);
            }
            replaced += 1;
            if p + 2 < len {
                counts.add(b, sym[p + 2], -1);
            }
            if w > 0 {
                counts.add(sym[w - 1], x, 1);
            }
            sym[w] = x;
            w += 1;
            r = p + 2;
        }
        base += 32;
    }
    if r < len {
        counts.add(x, sym[r], 1);
        sym.copy_within(r..len, w);
        w += len - r;
    }
    counts.add(a, b, -replaced);
    w
}

/// Expansion of every token slot (C's recursive `expand_symbol()` on
/// `best_table[i]`): real bytes expand to themselves, empty slots to "".
pub(crate) fn expand_tokens(tt: &TokenTable) -> Vec<Vec<u8>> {
    let mut exp: Vec<Vec<u8>> = vec![Vec::new(); 256];
    for (c, e) in exp.iter_mut().enumerate() {
        if tt.best_len[c] == 1 && tt.best[c][0] as usize == c {
            *e = vec![c as u8];
        }
    }
    // Tokens only refer to real bytes or to slots filled before them, i.e.
    // higher slot numbers.
    for c in (0..256).rev() {
        if tt.best_len[c] == 2 {
            let [x, y] = tt.best[c];
            let mut e = exp[x as usize].clone();
            e.extend_from_slice(&exp[y as usize]);
            exp[c] = e;
        }
    }
    exp
}
