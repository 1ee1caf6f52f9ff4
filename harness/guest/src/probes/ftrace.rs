//! `ftrace`: `available_filter_functions` lists no
//! `__ftrace_invalid_address___*` entries, and no call site inside an
//! orphaned weak body (which a size-blind lookup lists under the preceding
//! function's name).

use std::io::Write;

use super::kernel::{self, hex};
use crate::ktap::{CaseWriter, Verdict};

const DIR: &str = "/sys/kernel/tracing";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    if out.skip_if_not_applicable("no-invalid-entries") {
        out.skip_if_not_applicable("no-orphan-sites");
        return;
    }
    let list = format!("{DIR}/available_filter_functions");
    let text = match std::fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) => {
            // The build has the tracer (else the registry skipped above).
            return out.fail_rest(&format!("{list}: {e}"));
        }
    };
    let invalid: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("__ftrace_invalid_address__"))
        .collect();
    println!(
        "# {} entries in available_filter_functions",
        text.lines().count()
    );
    let invalid: Vec<String> = invalid
        .iter()
        .map(|l| format!("{l}: want a function name, kernel lists an invalid entry"))
        .collect();
    out.checked_items(
        "no-invalid-entries",
        text.lines().count(),
        "__ftrace_invalid_address___ entries",
        &invalid,
        "available_filter_functions is empty",
    );

    let addrs_path = format!("{DIR}/available_filter_functions_addrs");
    let setup = || -> Result<_, String> {
        let t = std::fs::read_to_string(&addrs_path).map_err(|e| format!("{addrs_path}: {e}"))?;
        let mut orphans = Vec::new();
        for l in kernel::read_lines(ksh_proto::EXPECT_ORPHANS)? {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() >= 3 {
                orphans.push((hex(f[0])?, hex(f[1])?, f[2].to_string()));
            }
        }
        // Sorted by start, for a binary search per call site.
        orphans.sort_by_key(|o: &(u64, u64, String)| o.0);
        Ok((t, orphans, kernel::kaslr_offset()?))
    };
    let (sites, orphans, off) = match setup() {
        Ok(x) => x,
        Err(e) => return out.case("no-orphan-sites", Verdict::Fail(vec![e])),
    };
    if orphans.is_empty() {
        return out.counted(
            "no-orphan-sites",
            0,
            0,
            Vec::new(),
            "no orphaned weak body in the expectations (the fixture guarantees one)",
        );
    }
    let mut bad = Vec::new();
    let mut n_sites = 0usize;
    for l in sites.lines() {
        let mut f = l.split_whitespace();
        let (Some(a), Some(name)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(a) = hex(a) else { continue };
        n_sites += 1;
        let link = a.wrapping_sub(off);
        // The orphan starting last at or before `link` (bodies do not
        // overlap).
        let i = orphans.partition_point(|o| o.0 <= link);
        if let Some(o) = i.checked_sub(1).map(|i| &orphans[i]).filter(|o| link < o.1) {
            bad.push(format!(
                "{a:#x} listed as {name}: want no entry, it is inside orphaned {} [{:#x},{:#x})",
                o.2, o.0, o.1
            ));
        }
    }
    println!(
        "# {} orphaned weak bodies against {n_sites} call sites",
        orphans.len()
    );
    out.checked_items(
        "no-orphan-sites",
        n_sites,
        "call sites inside orphaned weak bodies",
        &bad,
        "available_filter_functions_addrs lists no call site",
    );
}
