//! The `sizes` probe's plan, shared by the host (which encodes it once as
//! the check blob `sizes-check.bin`) and the guest (which
//! rebuilds it from `sizes.txt` only to explain mismatches): one start
//! record per address, then one last-byte record per distinct size of the
//! symbols there that have no other symbol inside.

use crate::check::{Expect, Record};

/// The symbols of `sizes.txt` at one link-time address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeGroup<'a> {
    pub addr: u64,
    /// Every kallsyms name at the address (sized or not), in table order.
    pub names: Vec<&'a str>,
    /// (name, ELF size, another symbol starts inside), in table order.
    pub sized: Vec<(&'a str, u64, bool)>,
}

/// Parses `sizes.txt` (`ADDR SIZE|- NESTED|- NAME` per line, grouped by
/// address, every group with at least one sized symbol).
pub fn parse(text: &str) -> Result<Vec<SizeGroup<'_>>, String> {
    let mut out: Vec<SizeGroup> = Vec::new();
    for l in crate::files::decode::<crate::files::SizesLine>(text)? {
        if out.last().is_none_or(|g| g.addr != l.addr) {
            out.push(SizeGroup {
                addr: l.addr,
                names: Vec::new(),
                sized: Vec::new(),
            });
        }
        let g = out.last_mut().unwrap();
        g.names.push(l.name);
        if let Some((size, nested)) = l.sized {
            g.sized.push((l.name, size, nested));
        }
    }
    if let Some(g) = out.iter().find(|g| g.sized.is_empty()) {
        return Err(format!(
            "{}: {:#x} has no sized symbol",
            crate::files::FileId::Sizes.path(),
            g.addr
        ));
    }
    Ok(out)
}

/// What the probe checks, in record-id order.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// Ids `0..starts.len()`: group index; want the first sized alias at
    /// offset 0 with its ELF size.
    pub starts: usize,
    /// Ids from `starts` on: (group index, size); want a name of the
    /// group at offset `size - 1`.
    pub lasts: Vec<(usize, u64)>,
    /// Sized symbols with another symbol inside (no last-byte record).
    pub nested: usize,
    pub symbols: usize,
    pub records: Vec<Record<'a>>,
}

/// The records for `groups` (link-time addresses).
pub fn plan<'a>(groups: &[SizeGroup<'a>]) -> Plan<'a> {
    let mut records: Vec<Record<'a>> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (name, size, _) = g.sized[0];
            Record {
                id: i as u32,
                addr: g.addr,
                expect: Expect::Symbol {
                    names: vec![name],
                    offset: Some(0),
                    size: Some(size),
                },
            }
        })
        .collect();
    let mut lasts = Vec::new();
    let mut nested = 0;
    for (i, g) in groups.iter().enumerate() {
        let mut sizes: Vec<u64> = Vec::new();
        for &(_, s, n) in &g.sized {
            if n {
                nested += 1;
            } else if !sizes.contains(&s) {
                sizes.push(s);
            }
        }
        for s in sizes {
            lasts.push((i, s));
            records.push(Record {
                id: records.len() as u32,
                addr: g.addr + s - 1,
                expect: Expect::Symbol {
                    names: g.names.clone(),
                    offset: Some(s - 1),
                    size: None,
                },
            });
        }
    }
    Plan {
        starts: groups.len(),
        lasts,
        nested,
        symbols: groups.iter().map(|g| g.sized.len()).sum(),
        records,
    }
}

/// The counts line of `sizes-counts.txt`.
pub fn counts_line(p: &Plan) -> String {
    format!(
        "starts={} last_bytes={} symbols={} nested={}\n",
        p.starts,
        p.lasts.len(),
        p.symbols,
        p.nested
    )
}

/// (starts, last_bytes, symbols, nested) from [`counts_line`]'s text.
pub fn parse_counts(text: &str) -> Result<(usize, usize, usize, usize), String> {
    let field = |k: &str| -> Result<usize, String> {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                format!(
                    "{}: no {k}= in {text:?}",
                    crate::files::FileId::SizesCounts.path()
                )
            })
    };
    Ok((
        field("starts")?,
        field("last_bytes")?,
        field("symbols")?,
        field("nested")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_has_starts_then_last_bytes() {
        let text = "1000 10 0 a\n1000 - - a_alias\n1000 20 0 b\n2000 40 1 outer\n2010 8 0 inner\n";
        let g = parse(text).unwrap();
        assert_eq!(g.len(), 3);
        let p = plan(&g);
        assert_eq!((p.starts, p.nested, p.symbols), (3, 1, 4));
        assert_eq!(p.lasts, [(0, 0x10), (0, 0x20), (2, 8)]);
        assert_eq!(p.records.len(), 6);
        assert_eq!(p.records[3].addr, 0x100f);
        assert_eq!(
            p.records[0].expect,
            Expect::Symbol {
                names: vec!["a"],
                offset: Some(0),
                size: Some(0x10)
            }
        );
        assert_eq!(parse_counts(&counts_line(&p)).unwrap(), (3, 3, 4, 1));
        assert!(parse("1000 - - only_unsized\n").is_err());
        assert!(parse("garbage\n").is_err());
    }
}
