//! `ftrace`: `available_filter_functions` lists no
//! `__ftrace_invalid_address___*` entries, and no call site inside an
//! orphaned weak body (which a size-blind lookup lists under the preceding
//! function's name). Filtering, which looks every record up
//! (`ftrace_match_record()` → `lookup_ip()`), works on every function and
//! on the probe module's (`filter-all`, `filter-module`); warnings it
//! might print are caught by `boot/no-kernel-warnings`.

use std::io::Write;

use super::kernel::{self, hex, summarize_detail};
use crate::ktap::{CaseWriter, Verdict};

const DIR: &str = "/sys/kernel/tracing";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let list = format!("{DIR}/available_filter_functions");
    let text = match std::fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) => {
            let why =
                format!("{list}: {e} (needs CONFIG_FUNCTION_TRACER and CONFIG_DYNAMIC_FTRACE)");
            return out.skip_rest(&why);
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
    out.case(
        "no-invalid-entries",
        if invalid.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(summarize_detail(
                "__ftrace_invalid_address___ entries",
                &invalid,
            ))
        },
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
        Err(e) => {
            out.case("no-orphan-sites", Verdict::Fail(vec![e]));
            return filters(out, &text);
        }
    };
    let mut bad = Vec::new();
    for l in sites.lines() {
        let mut f = l.split_whitespace();
        let (Some(a), Some(name)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(a) = hex(a) else { continue };
        let link = a.wrapping_sub(off);
        // The orphan starting last at or before `link` (bodies do not
        // overlap).
        let i = orphans.partition_point(|o| o.0 <= link);
        if let Some(o) = i.checked_sub(1).map(|i| &orphans[i]).filter(|o| link < o.1) {
            bad.push(format!(
                "{a:#x} listed as {name}: inside orphaned {} [{:#x},{:#x})",
                o.2, o.0, o.1
            ));
        }
    }
    out.case(
        "no-orphan-sites",
        if bad.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(summarize_detail(
                "call sites inside orphaned weak bodies",
                &bad,
            ))
        },
    );
    filters(out, &text);
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

fn filters<W: Write>(out: &mut CaseWriter<W>, available: &str) {
    let valid: Vec<&str> = available
        .lines()
        .filter(|l| !l.starts_with("__ftrace_invalid_address__"))
        .collect();
    out.case(
        "filter-all",
        match filter("*") {
            Err(e) => Verdict::Fail(vec![e]),
            Ok(_) if valid.is_empty() => {
                Verdict::Fail(vec!["0 checked: available_filter_functions is empty".into()])
            }
            Ok(set) if set.len() == valid.len() => {
                println!("# filter *: {} functions", set.len());
                Verdict::Pass
            }
            Ok(set) => Verdict::Fail(vec![format!(
                "set_ftrace_filter '*' selected {} functions, available_filter_functions lists {}",
                set.len(),
                valid.len()
            )]),
        },
    );
    let m = ksh_proto::MODULE_NAME;
    let want: Vec<&str> = valid
        .iter()
        .filter(|l| l.ends_with(&format!(" [{m}]")))
        .copied()
        .collect();
    out.case(
        "filter-module",
        match filter(&format!(":mod:{m}")) {
            Err(e) => Verdict::Fail(vec![e]),
            Ok(_) if want.is_empty() => Verdict::Fail(vec![format!(
                "0 checked: available_filter_functions lists no function of [{m}]"
            )]),
            Ok(mut set) => {
                let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
                set.sort();
                want.sort();
                println!("# filter :mod:{m}: {} functions", set.len());
                if set == want {
                    Verdict::Pass
                } else {
                    Verdict::Fail(vec![format!(
                        "set_ftrace_filter ':mod:{m}' selected {set:?}, want {want:?}"
                    )])
                }
            }
        },
    );
}
