//! `ftrace`: `available_filter_functions_addrs` (the names of
//! `available_filter_functions` with their addresses) lists no
//! `__ftrace_invalid_address___*` entries (a record whose lookup fails, or
//! lies past `FTRACE_MCOUNT_MAX_OFFSET`, is listed so). No case looks for
//! call sites inside orphaned weak bodies: `scripts/sorttable` drops every
//! call site outside a function at build time (Debian's 6.12 backport,
//! mainline since 6.14), so no kernel the harness builds has one and such
//! a case could not fail (patches/6.12/CALLERS.md). Filtering, which looks every record up
//! (`ftrace_match_record()` → `lookup_ip()`), works on every function and
//! on the probe module's (`filter-all`, `filter-module`); warnings it
//! might print are caught by `boot/no-kernel-warnings`.

use std::io::Write;

use crate::ktap::{CaseWriter, Verdict};

const DIR: &str = "/sys/kernel/tracing";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    if out.skip_if_not_applicable("no-invalid-entries") {
        for c in ["filter-all", "filter-module"] {
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
        // The kernel refused the glob: it selected none of the functions.
        Err(e) => out.counted(
            "filter-all",
            valid.len().max(1),
            valid.len().max(1),
            vec![format!("{e}: no function selected")],
            "",
        ),
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
