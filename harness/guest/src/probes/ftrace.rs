//! `ftrace`: `available_filter_functions_addrs` (the names of
//! `available_filter_functions` with their addresses) lists no
//! `__ftrace_invalid_address___*` entries (a record whose lookup fails, or
//! lies past `FTRACE_MCOUNT_MAX_OFFSET`, is listed so). Filtering, which
//! looks every record up (`ftrace_match_record()` → `lookup_ip()`),
//! selects exactly what it should: for `*` (`filter-all`) the functions of
//! the image's call sites as the host names them (`ftrace.txt`, from
//! `__mcount_loc`), for `:mod:ksh_probe` (`filter-module`) the call sites
//! ftrace recorded in the module's memory (`/proc/modules`); warnings it
//! might print are caught by `boot/no-kernel-warnings`.
//!
//! No case looks for call sites inside orphaned weak bodies:
//! `scripts/sorttable` zeroes every call site outside a function at build
//! time (Debian's 6.12 backport, mainline since 6.14), so no kernel the
//! harness builds has one and such a case could not fail
//! (patches/6.12/CALLERS.md).

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
    no_invalid_entries(out, &sites);
    filter_all(out);
    filter_module(out, &sites);
}

/// `no-invalid-entries`: `available_filter_functions` (the names of
/// `sites`) has no `__ftrace_invalid_address__` entry.
fn no_invalid_entries<W: Write>(out: &mut CaseWriter<W>, sites: &str) {
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
}

/// The module's core memory `[base, base + size)` as the module loader
/// reports it in `/proc/modules` (not kallsyms): `NAME SIZE REFS DEPS STATE
/// ADDR`.
fn module_range(name: &str) -> Result<(u64, u64), String> {
    let text =
        std::fs::read_to_string("/proc/modules").map_err(|e| format!("/proc/modules: {e}"))?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .ok_or_else(|| format!("/proc/modules has no {name} line"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let size: u64 = f
        .get(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("/proc/modules: no size in {line:?}"))?;
    let base = f
        .get(5)
        .ok_or_else(|| format!("/proc/modules: no address in {line:?}"))
        .and_then(|a| crate::probe_module::hex(a))?;
    if base == 0 {
        return Err(format!("/proc/modules shows {name} at address 0"));
    }
    Ok((base, size))
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

/// `filter-all`: the selection of `*` is vmlinux's call sites as the
/// host derived them (and the module's).
fn filter_all<W: Write>(out: &mut CaseWriter<W>) {
    // vmlinux's traceable functions as the host derived them from the
    // image (`__mcount_loc`, each site named by the size-aware rule): the
    // selection of `*` must be exactly these (and the module's, below).
    let host = crate::expect::expect_text(ksh_proto::files::FileId::Ftrace.path()).and_then(|t| {
        Ok(
            ksh_proto::files::decode::<ksh_proto::files::FtraceLine>(&t)?
                .into_iter()
                .map(|l| l.name.to_string())
                .collect::<Vec<String>>(),
        )
    });
    match (host, filter("*")) {
        (Err(e), _) => out.case("filter-all", Verdict::Fail(vec![format!("setup: {e}")])),
        // The kernel refused the glob: it selected none of the functions.
        (Ok(host), Err(e)) => out.counted(
            "filter-all",
            host.len().max(1),
            host.len().max(1),
            vec![format!("{e}: no function selected")],
            "",
        ),
        (Ok(host), Ok(set)) => {
            println!("# filter *: {} functions", set.len());
            // Multisets: a name appears once per call site (static
            // functions share names).
            let mut diff: std::collections::BTreeMap<&str, i64> = Default::default();
            for n in &host {
                *diff.entry(n.as_str()).or_default() += 1;
            }
            for n in set.iter().filter(|l| !l.ends_with(']')) {
                *diff.entry(n.as_str()).or_default() -= 1;
            }
            let bad: Vec<String> = diff
                .iter()
                .filter(|(_, &d)| d != 0)
                .map(|(n, &d)| {
                    if d > 0 {
                        format!("{n}: a traceable function ({d} call site(s)), not selected by '*'")
                    } else {
                        format!(
                            "{n}: selected by '*' {} time(s) more than it has call sites",
                            -d
                        )
                    }
                })
                .collect();
            out.checked_items(
                "filter-all",
                host.len(),
                "filter selections that differ from the image's call sites",
                &bad,
                &format!("{} is empty", ksh_proto::files::FileId::Ftrace.path()),
            );
        }
    }
}

/// `filter-module`: the selection of `:mod:ksh_probe` is the call sites
/// in the module's memory (of `sites`, the addressed listing).
fn filter_module<W: Write>(out: &mut CaseWriter<W>, sites: &str) {
    // The module's functions: the call sites ftrace recorded inside the
    // module's memory (addresses from ftrace's records and the module
    // loader, not kallsyms), by the names the listing gives them.
    let m = ksh_proto::MODULE_NAME;
    let suffix = format!(" [{m}]");
    let want = match module_range(m) {
        Ok((base, size)) => sites
            .lines()
            .filter_map(|l| {
                let (a, name) = l.split_once(' ')?;
                let a = crate::probe_module::hex(a).ok()?;
                (base <= a && a < base + size).then(|| name.trim_end_matches(&suffix).to_string())
            })
            .collect::<std::collections::BTreeSet<String>>(),
        Err(e) => return out.case("filter-module", Verdict::Fail(vec![format!("setup: {e}")])),
    };
    println!("# {} call sites in the module's memory", want.len());
    match filter(&format!(":mod:{m}")) {
        // The kernel refused the glob: it selected none of them.
        Err(e) => out.counted(
            "filter-module",
            want.len().max(1),
            want.len().max(1),
            vec![format!("{e}: no function selected")],
            "",
        ),
        Ok(set) => {
            let set: std::collections::BTreeSet<String> = set
                .iter()
                .map(|s| s.trim_end_matches(&suffix).to_string())
                .collect();
            println!("# filter :mod:{m}: {} functions", set.len());
            let mut bad: Vec<String> = want
                .difference(&set)
                .map(|n| format!("{n}: in the module's memory, not selected by ':mod:{m}'"))
                .collect();
            bad.extend(
                set.difference(&want)
                    .map(|n| format!("{n}: selected by ':mod:{m}', not in the module's memory")),
            );
            out.checked_items(
                "filter-module",
                want.len(),
                "module filter selections",
                &bad,
                "ftrace recorded no call site in the probe module's memory",
            );
        }
    }
}
