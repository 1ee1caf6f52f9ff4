//! `ftrace`: `available_filter_functions_addrs` (the names of
//! `available_filter_functions` with their addresses) lists no
//! `__ftrace_invalid_address___*` entries, and no call site inside an
//! orphaned weak body (which a size-blind lookup lists under the preceding
//! function's name). Filtering, which looks every record up
//! (`ftrace_match_record()` → `lookup_ip()`), works on every function and
//! on the probe module's (`filter-all`, `filter-module`); warnings it
//! might print are caught by `boot/no-kernel-warnings`.

use std::io::Write;

use crate::ktap::{CaseWriter, Verdict};
use crate::support::{self, hex};

const DIR: &str = "/sys/kernel/tracing";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    if out.skip_if_not_applicable("no-invalid-entries") {
        for c in ["no-orphan-sites", "filter-all", "filter-module"] {
            out.skip_if_not_applicable(c);
        }
        return;
    }
    // One listing serves every case: `available_filter_functions_addrs` is
    // `available_filter_functions` (the same seq_file show, each record
    // looked up and named) with the record's address in front, so the
    // kernel names every record once here, not twice.
    let addrs_path = format!("{DIR}/available_filter_functions_addrs");
    let sites = match std::fs::read_to_string(&addrs_path) {
        Ok(t) => t,
        Err(e) => {
            // The build has the tracer (else the registry skipped above).
            return out.fail_rest(&format!("{addrs_path}: {e}"));
        }
    };
    // The names as `available_filter_functions` lists them.
    let names: Vec<&str> = sites
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect();
    let invalid: Vec<&str> = names
        .iter()
        .copied()
        .filter(|l| l.starts_with("__ftrace_invalid_address__"))
        .collect();
    println!(
        "# {} entries in available_filter_functions_addrs",
        names.len()
    );
    let invalid: Vec<String> = invalid
        .iter()
        .map(|l| format!("{l}: want a function name, kernel lists an invalid entry"))
        .collect();
    out.checked_items(
        "no-invalid-entries",
        names.len(),
        "__ftrace_invalid_address___ entries",
        &invalid,
        "available_filter_functions_addrs is empty",
    );

    let setup = || -> Result<_, String> {
        let orphans_text = support::expect_text(ksh_proto::EXPECT_ORPHANS)?;
        let mut orphans: Vec<(u64, u64, String)> =
            ksh_proto::files::decode::<ksh_proto::files::OrphanLine>(&orphans_text)?
                .into_iter()
                .map(|o| (o.start, o.end, o.name.to_string()))
                .collect();
        // Sorted by start, for a binary search per call site.
        orphans.sort_by_key(|o: &(u64, u64, String)| o.0);
        Ok((orphans, support::kaslr_offset()?))
    };
    let (orphans, off) = match setup() {
        Ok(x) => x,
        Err(e) => {
            out.case("no-orphan-sites", Verdict::Fail(vec![e]));
            return filters(out, &names);
        }
    };
    if orphans.is_empty() {
        out.counted(
            "no-orphan-sites",
            0,
            0,
            Vec::new(),
            "no orphaned weak body in the expectations (the fixture guarantees one)",
        );
        return filters(out, &names);
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
    filters(out, &names);
}

/// Sets `set_ftrace_filter` to `glob`, reads it back, and clears it.
fn filter(glob: &str) -> Result<Vec<String>, String> {
    let path = format!("{DIR}/set_ftrace_filter");
    std::fs::write(&path, format!("{glob}\n"))
        .map_err(|e| format!("writing {glob:?} to {path}: {e}"))?;
    let back = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"));
    // Truncating clears the filter.
    let cleared = std::fs::write(&path, "").map_err(|e| format!("clearing {path}: {e}"));
    let back = back?;
    cleared?;
    Ok(back.lines().map(str::to_string).collect())
}

fn filters<W: Write>(out: &mut CaseWriter<W>, available: &[&str]) {
    let valid: Vec<&str> = available
        .iter()
        .copied()
        .filter(|l| !l.starts_with("__ftrace_invalid_address__"))
        .collect();
    match filter("*") {
        Err(e) => out.case("filter-all", Verdict::Fail(vec![e])),
        Ok(set) => {
            println!("# filter *: {} functions", set.len());
            let bad: Vec<String> = if set.len() == valid.len() {
                Vec::new()
            } else {
                vec![format!(
                    "set_ftrace_filter '*': want the {} functions of available_filter_functions, kernel selected {}",
                    valid.len(),
                    set.len()
                )]
            };
            out.checked_items(
                "filter-all",
                valid.len(),
                "filter selections",
                &bad,
                "available_filter_functions is empty",
            );
        }
    }
    let m = ksh_proto::MODULE_NAME;
    let mut want: Vec<String> = valid
        .iter()
        .filter(|l| l.ends_with(&format!(" [{m}]")))
        .map(|s| s.to_string())
        .collect();
    match filter(&format!(":mod:{m}")) {
        Err(e) => out.case("filter-module", Verdict::Fail(vec![e])),
        Ok(mut set) => {
            set.sort();
            want.sort();
            println!("# filter :mod:{m}: {} functions", set.len());
            let bad: Vec<String> = if set == want {
                Vec::new()
            } else {
                vec![format!(
                    "set_ftrace_filter ':mod:{m}': want {want:?}, kernel selected {set:?}"
                )]
            };
            out.checked_items(
                "filter-module",
                want.len(),
                "module filter selections",
                &bad,
                "available_filter_functions lists no function of the probe module",
            );
        }
    }
}
