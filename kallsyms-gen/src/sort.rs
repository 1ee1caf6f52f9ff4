// SPDX-License-Identifier: GPL-2.0-only
//! Stages 4 and 5 of `scripts/kallsyms.c`: `sort_symbols()` (the
//! `compare_symbols()` order) and `record_relative_base()`.

use crate::table::{Slot, Table, ARENA_SLACK};

// ---------------------------------------------------------------------------
// sort_symbols
// ---------------------------------------------------------------------------

/// C's `may_be_linker_script_provide_symbol()`; `name` excludes the type.
fn may_be_linker_script_provide_symbol(name: &[u8]) -> bool {
    let len = name.len();
    if len < 8 || !name.starts_with(b"__") {
        return false;
    }
    let rest = &name[2..];
    rest.starts_with(b"start_")
        || rest.starts_with(b"stop_")
        || rest.starts_with(b"end_")
        || name.ends_with(b"_start")
        || name.ends_with(b"_end")
}

/// `compare_symbols()` order: address, non-weak before weak, non linker
/// provided before linker provided, fewer leading underscores, input order.
/// It is a total order, so the key is packed into a `u128` and sorted with
/// an unstable sort (the C tool uses `qsort`).
///
/// Faster than C: maps come from `nm -n`, already in address order, so
/// usually only the short runs of symbols at one address need sorting.
///
/// The symbols are then copied to a new arena in the sorted order (for
/// locality during compression); the old one is kept as `names`.
pub(crate) fn sort_symbols(t: &mut Table) {
    let n = t.count();
    let key = |i: usize| -> u128 {
        let sym = t.sym(i);
        let name = &sym[1..];
        let weak = matches!(sym[0], b'w' | b'W') as u128;
        let lsp = may_be_linker_script_provide_symbol(name) as u128;
        let underscores = name.iter().take_while(|&&c| c == b'_').count() as u128;
        ((t.addr[i] as u128) << 64) | (weak << 63) | (lsp << 62) | (underscores << 32) | i as u128
    };
    let mut order: Vec<u32> = Vec::with_capacity(n);
    if t.addr.windows(2).all(|w| w[0] <= w[1]) {
        let mut keys: Vec<u128> = Vec::new();
        let mut i = 0;
        while i < n {
            let mut end = i + 1;
            while end < n && t.addr[end] == t.addr[i] {
                end += 1;
            }
            keys.clear();
            keys.extend((i..end).map(key));
            keys.sort_unstable();
            order.extend(keys.iter().map(|&k| k as u32));
            i = end;
        }
    } else {
        let mut keys: Vec<u128> = (0..n).map(key).collect();
        keys.sort_unstable();
        order.extend(keys.iter().map(|&k| k as u32));
    }

    let mut arena = Vec::with_capacity(t.arena.len() + ARENA_SLACK);
    let mut slot = Vec::with_capacity(n);
    for &i in &order {
        let sym = t.sym(i as usize);
        slot.push(Slot {
            start: arena.len() as u32,
            len: sym.len() as u32,
        });
        arena.extend_from_slice(sym);
    }
    // Zero bytes at the end for pair_bits' word reads.
    arena.resize(arena.len() + ARENA_SLACK, 0);
    // Faster than C (which expands every compressed symbol back with
    // expand_symbol() before printing it): the uncompressed names are kept.
    t.name_start = order.iter().map(|&i| t.slot[i as usize].start).collect();
    t.name_len = slot.iter().map(|s| s.len as u16).collect();
    t.names = std::mem::replace(&mut t.arena, arena);
    t.slot = slot;
    t.addr = order.iter().map(|&i| t.addr[i as usize]).collect();
    t.percpu_absolute = order
        .iter()
        .map(|&i| t.percpu_absolute[i as usize])
        .collect();
    if !t.size.is_empty() {
        t.size = order.iter().map(|&i| t.size[i as usize]).collect();
    }
}

// ---------------------------------------------------------------------------
// record_relative_base
// ---------------------------------------------------------------------------

/// Find the minimum non-absolute symbol address (the table is sorted by
/// address, so it is the first non-absolute one).
pub(crate) fn record_relative_base(t: &mut Table) {
    if let Some(i) = (0..t.count()).find(|&i| !t.percpu_absolute[i]) {
        t.relative_base = t.addr[i];
    }
}
