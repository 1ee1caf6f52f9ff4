//! What kallsyms costs a kernel: the bytes of every table the generator
//! emitted, read from a linked `vmlinux`.
//!
//! A table's size is the distance from its label to the next table's
//! (alignment padding included, as it is in the image): 6.12's generated
//! assembly has labels but no `.size`, and 7.3's sizes most tables but
//! not all (`kallsyms_num_syms`, `kallsyms_token_index`,
//! `kallsyms_seqs_of_names`), so both lines are measured alike. The last table ends at its known length
//! (`kallsyms_seqs_of_names`: 3 bytes per symbol) or at the next symbol of
//! its section.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::symbols::{ElfImage, SymbolPlace};

/// Sizes of the kallsyms tables of one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Footprint {
    /// (table, bytes), in address order.
    pub tables: Vec<(String, u64)>,
    /// `kallsyms_num_syms`.
    pub num_syms: u64,
}

impl Footprint {
    pub fn total(&self) -> u64 {
        self.tables.iter().map(|(_, b)| b).sum()
    }

    /// Bytes of the size tables ([`SIZE_TABLES`]), 0 on a baseline kernel.
    pub fn size_tables(&self) -> u64 {
        self.tables
            .iter()
            .filter(|(n, _)| SIZE_TABLES.contains(&n.as_str()))
            .map(|(_, b)| b)
            .sum()
    }
}

/// The size tables: `kallsyms_sizes` (plain) or the compact encoding's.
const SIZE_TABLES: &[&str] = &[
    "kallsyms_sizes",
    "kallsyms_size_codes",
    "kallsyms_size_gaps",
    "kallsyms_size_rank",
    "kallsyms_size_exc",
];

/// Labels the generator emits. Only these names: C objects of the kernel
/// also start with `kallsyms_` (`kallsyms_sizes_proc_ops` of
/// /proc/kallsyms_sizes), and a prefix rule once counted one of them,
/// with the distance to the next label, as a 264 KB table.
fn is_table_label(name: &str) -> bool {
    matches!(
        name,
        "kallsyms_num_syms"
            | "kallsyms_names"
            | "kallsyms_markers"
            | "kallsyms_token_table"
            | "kallsyms_token_index"
            | "kallsyms_offsets"
            | "kallsyms_relative_base"
            | "kallsyms_seqs_of_names"
    ) || SIZE_TABLES.contains(&name)
}

/// Reads the table sizes of `vmlinux`.
pub fn kallsyms_footprint(vmlinux: &Path) -> Result<Footprint> {
    let img = ElfImage::open(vmlinux).with_context(|| format!("reading {}", vmlinux.display()))?;
    // 6.12's generated assembly has no `.size`: there a sized symbol of a
    // table's name is an object of C, not the table. 7.3's gives most
    // tables a `.size`: a sized symbol counts when no label of that name
    // exists. Either way a table's bytes run to the next table (alignment
    // padding included), so both lines' figures compare.
    let mut labels: Vec<(u64, String, usize)> = Vec::new();
    let mut sized: Vec<(u64, String, usize)> = Vec::new();
    for s in &img.symbols {
        let SymbolPlace::Section(sec) = s.place else {
            continue;
        };
        let name = String::from_utf8_lossy(&s.name);
        if is_table_label(&name) && !img.sections[sec].is_exec() {
            let to = if s.size == 0 { &mut labels } else { &mut sized };
            to.push((s.value, name.into_owned(), sec));
        }
    }
    for t in sized {
        if !labels.iter().any(|l| l.1 == t.1) {
            labels.push(t);
        }
    }
    labels.sort();
    labels.dedup_by(|a, b| a.1 == b.1);
    let Some(num) = labels.iter().find(|l| l.1 == "kallsyms_num_syms") else {
        bail!(
            "{}: no kallsyms_num_syms: not a kernel with kallsyms",
            vmlinux.display()
        );
    };
    let num_syms = img
        .read_uint_at(num.0, 4)
        .context("reading kallsyms_num_syms")?;
    let mut tables = Vec::new();
    for (i, (addr, name, sec)) in labels.iter().enumerate() {
        let end = match labels.get(i + 1) {
            Some(next) if next.2 == *sec => next.0,
            // Its length is fixed: 3 bytes per symbol. (Unlabelled rodata
            // such as string literals may follow it.)
            _ if name == "kallsyms_seqs_of_names" => addr + 3 * num_syms,
            _ => {
                // The last table ends where the next symbol of its section starts.
                img.symbols
                    .iter()
                    .filter(|s| {
                        matches!(s.place, SymbolPlace::Section(x) if x == *sec) && s.value > *addr
                    })
                    .map(|s| s.value)
                    .min()
                    .unwrap_or_else(|| {
                        let section = &img.sections[*sec];
                        section.addr + section.size
                    })
            }
        };
        tables.push((name.clone(), end - addr));
    }
    Ok(Footprint { tables, num_syms })
}
