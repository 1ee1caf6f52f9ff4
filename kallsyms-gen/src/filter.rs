// SPDX-License-Identifier: GPL-2.0-only
//! Stages 2 and 3 of `scripts/kallsyms.c`: `shrink_table()` drops the
//! symbols kallsyms does not keep, `make_percpus_absolute()` marks the
//! percpu ones (`--absolute-percpu`).

use crate::table::{Slot, Table};

// ---------------------------------------------------------------------------
// shrink_table
// ---------------------------------------------------------------------------

/// C's `symbol_valid()`.
fn symbol_valid(t: &Table, i: usize, all_symbols: bool) -> bool {
    if all_symbols {
        return true;
    }
    let name = &t.sym(i)[1..];
    let addr = t.addr[i];
    // Symbols starting with __start and __stop are used to denote section
    // boundaries, and should always be included:
    if name.starts_with(b"__start_") || name.starts_with(b"__stop_") {
        return true;
    }
    if !t.text_ranges.iter().any(|r| r.contains(addr)) {
        return false;
    }
    // Corner case: discard any symbols with the same value as _etext or
    // _einittext (they can move between link passes).
    let [text, inittext] = &t.text_ranges;
    !((addr == text.end && name != text.end_sym)
        || (addr == inittext.end && name != inittext.end_sym))
}

/// Remove all the invalid symbols from the table (compacting the arena too).
pub(crate) fn shrink_table(t: &mut Table, all_symbols: bool) {
    let mut pos = 0;
    let mut arena_pos = 0usize;
    for i in 0..t.count() {
        if symbol_valid(t, i, all_symbols) {
            let Slot { start, len } = t.slot[i];
            let (s, l) = (start as usize, len as usize);
            t.arena.copy_within(s..s + l, arena_pos);
            t.slot[pos] = Slot {
                start: arena_pos as u32,
                len,
            };
            t.addr[pos] = t.addr[i];
            if !t.size.is_empty() {
                t.size[pos] = t.size[i];
            }
            arena_pos += l;
            pos += 1;
        }
    }
    t.arena.truncate(arena_pos);
    t.slot.truncate(pos);
    t.addr.truncate(pos);
    t.size.truncate(pos);
    t.percpu_absolute.truncate(pos);
}

// ---------------------------------------------------------------------------
// make_percpus_absolute
// ---------------------------------------------------------------------------

pub(crate) fn make_percpus_absolute(t: &mut Table) {
    for i in 0..t.count() {
        if t.percpu_range.contains(t.addr[i]) {
            // Keep the 'A' override for percpu symbols to ensure consistent
            // behavior compared to older versions of this tool.
            t.arena[t.slot[i].start as usize] = b'A';
            t.percpu_absolute[i] = true;
        }
    }
}
