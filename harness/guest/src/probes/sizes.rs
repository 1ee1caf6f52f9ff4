//! `sizes`: for every sized kallsyms symbol, a lookup of its start gives
//! its name, offset 0 and its ELF size, and a lookup of its last byte gives
//! the same symbol. For aliases (several names at one address), name and
//! offset checks accept any of the names (size-blind kernels report the
//! first in table order); `start-size` wants the first *sized* alias in
//! table order with its ELF size, the rule of the size-aware lookup
//! (patches/6.12/0006).
//!
//! The host encoded the checks once (`ksh_proto::sizes::plan`, as
//! `sizes-check.bin`): the probe sends that blob to the kernel as it is and
//! gets back only the answers that differ from the strictest expectation.
//! Only then does it read `sizes.txt`, rebuild the same plan, and judge
//! each differing answer with the rules above.

use std::io::Write;

use ksh_proto::sizes;

use crate::expect::Group;
use crate::ktap::CaseWriter;
use crate::probe_module::Lookup;
use crate::{expect, kaslr, probe_module};

const EMPTY: &str = "no sized symbol in /ksh/expect/sizes.txt (every kernel has thousands)";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let setup = || -> Result<_, String> {
        let blob = std::fs::read(ksh_proto::files::FileId::SizesCheck.path())
            .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::SizesCheck.path()))?;
        let counts = std::fs::read_to_string(ksh_proto::files::FileId::SizesCounts.path())
            .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::SizesCounts.path()))?;
        Ok((blob, sizes::parse_counts(&counts)?, kaslr::kaslr_offset()?))
    };
    let (blob, (starts, n_lasts, n_sym, nested), off) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    // The plan must cover every sized symbol and address the host's table
    // has (counted there without the plan's code), or the cases would
    // check less than they say.
    let info = expect::build_info();
    let count = |k: &str| info.get(k).and_then(|v| v.parse::<usize>().ok());
    match (
        count(ksh_proto::SIZED_SYMBOLS_KEY),
        count(ksh_proto::SIZED_ADDRESSES_KEY),
    ) {
        (Some(sym), Some(addrs)) if sym == n_sym && addrs == starts => {}
        (Some(sym), Some(addrs)) => {
            return out.fail_rest(&format!(
                "setup: the check plan covers {n_sym} sized symbols at {starts} addresses, the host's table has {sym} at {addrs}"
            ))
        }
        _ => {
            return out.fail_rest(&format!(
                "setup: {} has no {}= or {}= line",
                ksh_proto::files::FileId::BuildInfo.path(),
                ksh_proto::SIZED_SYMBOLS_KEY,
                ksh_proto::SIZED_ADDRESSES_KEY
            ))
        }
    }
    let answers = match probe_module::check_blob(&blob, starts + n_lasts, off) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    println!(
        "# {n_sym} sized symbols at {starts} addresses; {n_lasts} last bytes ({nested} symbols with another symbol inside are not last-byte checked); KASLR offset {off:#x}"
    );
    let (mut bad_name, mut bad_size, mut bad_last) = (Vec::new(), Vec::new(), Vec::new());
    if !answers.differing.is_empty() {
        if let Err(e) = judge(
            &answers,
            starts,
            n_lasts,
            &mut bad_name,
            &mut bad_size,
            &mut bad_last,
        ) {
            return out.fail_rest(&e);
        }
    }
    out.checked_items(
        "start-name-offset",
        starts,
        "starts not looked up as name+0x0",
        &bad_name,
        EMPTY,
    );
    out.checked_items(
        "start-size",
        starts,
        "starts with a size other than the ELF size",
        &bad_size,
        EMPTY,
    );
    out.checked_items(
        "last-byte",
        n_lasts,
        "last bytes not attributed to their symbol",
        &bad_last,
        EMPTY,
    );
}

/// Explains the differing answers: rebuilds the plan from `sizes.txt`
/// (it must be the one the host encoded) and applies each case's rule.
#[allow(clippy::too_many_arguments)]
fn judge(
    answers: &probe_module::CheckOutcome,
    starts: usize,
    n_lasts: usize,
    bad_name: &mut Vec<String>,
    bad_size: &mut Vec<String>,
    bad_last: &mut Vec<String>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(ksh_proto::files::FileId::Sizes.path())
        .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::Sizes.path()))?;
    let parsed = sizes::parse(&text)?;
    let plan = sizes::plan(&parsed);
    if plan.starts != starts || plan.lasts.len() != n_lasts {
        return Err(format!(
            "{} and {} disagree: {} starts and {} last bytes in the text, {starts} and {n_lasts} encoded",
            ksh_proto::files::FileId::Sizes.path(),
            ksh_proto::files::FileId::SizesCheck.path(),
            plan.starts,
            plan.lasts.len()
        ));
    }
    let groups: Vec<Group> = parsed.iter().map(Group::from).collect();
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
    for (k, &(i, s)) in plan.lasts.iter().enumerate() {
        let Some(a): Option<&Lookup> = answers.get(starts + k) else {
            continue;
        };
        let g = &groups[i];
        if !a.found || !g.names.contains(&a.name) || a.offset != s - 1 {
            bad_last.push(format!(
                "{} last byte +{:#x}: {}",
                g.label(),
                s - 1,
                a.describe()
            ));
        }
    }
    Ok(())
}
