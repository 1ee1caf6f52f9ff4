//! `sizes`: for every sized kallsyms symbol, a lookup of its start gives
//! its name, offset 0 and its ELF size, and a lookup of its last byte gives
//! the same symbol. For aliases (several names at one address), name and
//! offset checks accept any of the names (size-blind kernels report the
//! first in table order); `start-size` wants the first *sized* alias in
//! table order with its ELF size, the rule of the size-aware lookup
//! (patches/6.12/0006).

use std::io::Write;

use ksh_proto::check::{Expect, Record};

use super::kernel::{self, Group};
use crate::ktap::CaseWriter;

const EMPTY: &str = "no sized symbol in /ksh/expect/sizes.txt (every kernel has thousands)";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let (groups, off) = match kernel::size_groups().and_then(|g| Ok((g, kernel::kaslr_offset()?))) {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    // Starts first, then (group, size) of every last byte to check. The
    // kernel checks each address against the strictest answer accepted
    // (ksh_proto::check) and returns the others, judged below.
    let mut records: Vec<Record> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (want_name, want_size, _) = &g.sized[0];
            Record {
                id: i as u32,
                addr: g.addr.wrapping_add(off),
                expect: Expect::Symbol {
                    names: vec![want_name.as_str()],
                    offset: Some(0),
                    size: Some(*want_size),
                },
            }
        })
        .collect();
    let mut lasts: Vec<(usize, u64)> = Vec::new();
    let mut nested = 0usize;
    for (i, g) in groups.iter().enumerate() {
        let mut sizes: Vec<u64> = Vec::new();
        for (_, s, n) in &g.sized {
            if *n {
                nested += 1;
            } else if !sizes.contains(s) {
                sizes.push(*s);
            }
        }
        for s in sizes {
            lasts.push((i, s));
            records.push(Record {
                id: records.len() as u32,
                addr: g.addr.wrapping_add(off) + s - 1,
                expect: Expect::Symbol {
                    names: g.names.iter().map(String::as_str).collect(),
                    offset: Some(s - 1),
                    size: None,
                },
            });
        }
    }
    let answers = match kernel::check(&records) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    let n_sym: usize = groups.iter().map(|g| g.sized.len()).sum();
    println!(
        "# {} sized symbols at {} addresses; {} last bytes ({nested} symbols with another symbol inside are not last-byte checked); KASLR offset {off:#x}",
        n_sym,
        groups.len(),
        lasts.len()
    );

    let mut bad_name = Vec::new();
    let mut bad_size = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        // Absent: the kernel gave exactly the strictest answer.
        let Some(a) = answers.get(i) else { continue };
        if !a.found || a.offset != 0 || !g.names.contains(&a.name) {
            bad_name.push(format!("{}: {}", g.label(), a.describe()));
        }
        // The size-aware rule (patches/6.12/0006): among the aliases, the
        // first sized one in table order that contains the address wins,
        // with its own size; at the start that is the first sized alias.
        let (want_name, want_size, _) = &g.sized[0];
        if !a.found || a.offset != 0 || &a.name != want_name || a.size != *want_size {
            bad_size.push(format!(
                "{}: want {want_name}+0x0/{want_size:#x}, kernel {}",
                g.label(),
                a.describe()
            ));
        }
    }
    out.checked_items(
        "start-name-offset",
        groups.len(),
        "starts not looked up as name+0x0",
        &bad_name,
        EMPTY,
    );
    out.checked_items(
        "start-size",
        groups.len(),
        "starts with a size other than the ELF size",
        &bad_size,
        EMPTY,
    );

    let mut bad_last = Vec::new();
    for (k, &(i, s)) in lasts.iter().enumerate() {
        let Some(a) = answers.get(groups.len() + k) else {
            continue;
        };
        let g: &Group = &groups[i];
        if !a.found || !g.names.contains(&a.name) || a.offset != s - 1 {
            bad_last.push(format!(
                "{} last byte +{:#x}: {}",
                g.label(),
                s - 1,
                a.describe()
            ));
        }
    }
    out.checked_items(
        "last-byte",
        lasts.len(),
        "last bytes not attributed to their symbol",
        &bad_last,
        EMPTY,
    );
}
