//! The size-aware lookup rule (patches/6.12/0006, `get_symbol_pos()`),
//! written out once for both sides: the host derives expectations from it
//! (the kprobes blacklist, unsized symbols), and the guest's `ksh-lookup`
//! prints it next to the kernel's answer. Independent of the kernel's code.

/// How far back the kernel looks for an enclosing sized symbol
/// (`KALLSYMS_NEST_SCAN` in patches/6.12/0006).
pub const NEST_SCAN: usize = 32;

/// One name at an address: its ELF size, if the symbol has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias<'a> {
    pub name: &'a str,
    pub size: Option<u64>,
}

/// The kallsyms table as the kernel's lookups see it: distinct addresses in
/// order, each with its aliases in table order.
#[derive(Debug, Clone, Default)]
pub struct Table<'a> {
    pub addrs: Vec<u64>,
    pub groups: Vec<Vec<Alias<'a>>>,
}

/// What a lookup of one address gives: the symbol's start, its extent
/// (size, or distance to the next symbol when unsized) and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    pub start: u64,
    pub size: u64,
    pub name: &'a str,
}

impl<'a> Table<'a> {
    /// `(address, name, size)` in kallsyms order (addresses ascending),
    /// already limited to the range the kernel looks up.
    pub fn new(entries: impl IntoIterator<Item = (u64, &'a str, Option<u64>)>) -> Self {
        let mut t = Table::default();
        for (addr, name, size) in entries {
            if t.addrs.last() != Some(&addr) {
                t.addrs.push(addr);
                t.groups.push(Vec::new());
            }
            t.groups.last_mut().unwrap().push(Alias { name, size });
        }
        t
    }

    /// The size-aware rule: at the closest start at or below `addr`, the
    /// first sized alias that contains `addr`; else an enclosing sized
    /// symbol among the [`NEST_SCAN`] names before; else no symbol. Where
    /// no alias has a size, the old rule: up to the next start.
    pub fn find(&self, addr: u64) -> Option<Found<'a>> {
        let i = self.addrs.partition_point(|&a| a <= addr).checked_sub(1)?;
        let start = self.addrs[i];
        let group = &self.groups[i];
        let containing = |g: &[Alias<'a>], s: u64| {
            g.iter()
                .find(|e| e.size.is_some_and(|z| addr - s < z))
                .map(|e| Found {
                    start: s,
                    size: e.size.unwrap(),
                    name: e.name,
                })
        };
        if group.iter().any(|e| e.size.is_some()) {
            if let Some(f) = containing(group, start) {
                return Some(f);
            }
            let mut j = i;
            let mut seen = 0;
            while j > 0 && seen < NEST_SCAN {
                j -= 1;
                seen += self.groups[j].len();
                if let Some(f) = containing(&self.groups[j], self.addrs[j]) {
                    return Some(f);
                }
            }
            return None;
        }
        let end = self.addrs.get(i + 1).copied()?;
        Some(Found {
            start,
            size: end - start,
            name: group[0].name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_padding_nested_and_unsized() {
        let l = Table::new([
            (0x100, "a", Some(0x20)),
            (0x140, "outer", Some(0x60)),
            (0x160, "inner", Some(0x10)),
            (0x200, "asm", None),
            (0x240, "b", Some(0x8)),
        ]);
        assert_eq!(l.find(0x110).unwrap().name, "a");
        assert!(l.find(0x120).is_none(), "padding after a");
        assert!(l.find(0xff).is_none(), "before the first symbol");
        assert_eq!(l.find(0x165).unwrap().name, "inner");
        let f = l.find(0x170).unwrap();
        assert_eq!((f.name, f.start, f.size), ("outer", 0x140, 0x60));
        assert!(l.find(0x1a0).is_none(), "past outer");
        assert_eq!(l.find(0x230).unwrap().size, 0x40, "unsized: up to next");
    }
}
