// SPDX-License-Identifier: GPL-2.0-only
//! The symbol table every stage works on: `struct sym_entry **table` and
//! `struct addr_range` of `scripts/kallsyms.c`, stored as one arena of
//! symbol bytes instead of one allocation per symbol.

/// `struct addr_range` of the C tool.
#[derive(Clone, Copy)]
pub(crate) struct AddrRange {
    pub(crate) start_sym: &'static [u8],
    pub(crate) end_sym: &'static [u8],
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl AddrRange {
    pub(crate) fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr <= self.end
    }
}

/// The symbol table. Each symbol's bytes (type char followed by the name,
/// exactly like the C tool's `sym[]`) live in one flat arena instead of one
/// heap allocation per symbol.
pub(crate) struct Table {
    /// Type char + name of every symbol, back to back.
    pub(crate) arena: Vec<u8>,
    /// Where each symbol's bytes are in `arena`.
    pub(crate) slot: Vec<Slot>,
    pub(crate) addr: Vec<u64>,
    /// `nm -S` sizes (0 when absent); only collected with `--symbol-sizes`.
    pub(crate) size: Vec<u64>,
    /// `percpu_absolute` flag of the C tool.
    pub(crate) percpu_absolute: Vec<bool>,
    /// The uncompressed symbols (type + name), for the comments and the
    /// name sort of `write_src`: where each starts in `names`, and its length.
    pub(crate) names: Vec<u8>,
    pub(crate) name_start: Vec<u32>,
    pub(crate) name_len: Vec<u16>,
    pub(crate) text_ranges: [AddrRange; 2],
    pub(crate) percpu_range: AddrRange,
    pub(crate) text: u64,
    pub(crate) relative_base: u64,
}

/// Start and current length (type + name; shrinks while compressing) of a
/// symbol in the arena; one 8-byte entry, so that the compression finds a
/// symbol with one memory access.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl Table {
    pub(crate) fn new() -> Self {
        Table {
            arena: Vec::new(),
            slot: Vec::new(),
            addr: Vec::new(),
            size: Vec::new(),
            percpu_absolute: Vec::new(),
            names: Vec::new(),
            name_start: Vec::new(),
            name_len: Vec::new(),
            text_ranges: [
                AddrRange {
                    start_sym: b"_stext",
                    end_sym: b"_etext",
                    start: 0,
                    end: 0,
                },
                AddrRange {
                    start_sym: b"_sinittext",
                    end_sym: b"_einittext",
                    start: 0,
                    end: 0,
                },
            ],
            percpu_range: AddrRange {
                start_sym: b"__per_cpu_start",
                end_sym: b"__per_cpu_end",
                start: u64::MAX,
                end: 0,
            },
            text: 0,
            relative_base: 0,
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.addr.len()
    }

    /// Packs the (compressed, shrunk) symbols back to back again, keeping
    /// the working set of the compression small.
    pub(crate) fn compact(&mut self) {
        let mut pos = 0;
        for slot in &mut self.slot {
            let (s, l) = (slot.start as usize, slot.len as usize);
            self.arena.copy_within(s..s + l, pos);
            slot.start = pos as u32;
            pos += l;
        }
        self.arena.truncate(pos);
        self.arena.resize(pos + ARENA_SLACK, 0);
    }

    pub(crate) fn sym(&self, i: usize) -> &[u8] {
        let Slot { start, len } = self.slot[i];
        &self.arena[start as usize..(start + len) as usize]
    }
}

/// Zero bytes after the last symbol in the arena (for the 33-byte reads of
/// find_pair and pair_bits).
pub(crate) const ARENA_SLACK: usize = 40;
