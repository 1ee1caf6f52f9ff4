//! `lookup-bench`: the probe module times `ksh_proto::LOOKUP_BENCH_COUNT`
//! lookups (sprint_symbol) and `%pS` formats of random addresses in
//! `[_stext, _etext)`. The figures go out as a note line
//! (`# lookup_ns=N format_ns=M`) that `cargo xtask bench` reads; the case
//! only fails when the kernel could not be measured.
//!
//! A plain test run does one short round; `ksh.bench_rounds=N` on the
//! kernel command line (`cargo xtask bench` sets it) runs N full rounds
//! and reports their medians, each round on a line of its own (N = 1
//! under the bench's instruction clock, where rounds do not differ).
//!
//! Then the cost that resolves small differences: the lookups of every
//! address of the `sizes` plan (each sized symbol's start and last byte),
//! in one in-kernel loop, repeated N times
//! (`# sized_lookup_ns=MEDIAN min=.. max=.. n=.. rounds=N`, ns per lookup).
//! A plain test run times only the first 1000 addresses once, to keep the
//! path checked without costing a second.

use std::io::Write;

use crate::ktap::{CaseWriter, Verdict};
use crate::{expect, kaslr, probe_module};

/// Rounds the bench asked for on the kernel command line; `None` in a
/// plain test run.
fn bench_rounds() -> Option<usize> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    ksh_proto::cmdline_number(&cmdline, ksh_proto::BENCH_ROUNDS_PARAM).map(|n| (n as usize).max(1))
}

/// Random lookups (and `%pS` formats) per round: the bench's full count,
/// or a tenth in a plain test run, which only has to show the path works
/// (the full count cost 0.4 s of every x86_64 test run under TCG).
fn lookups_per_round(bench: bool) -> u64 {
    if bench {
        ksh_proto::LOOKUP_BENCH_COUNT
    } else {
        ksh_proto::LOOKUP_BENCH_COUNT / 10
    }
}

fn measure(lo: u64, hi: u64, count: u64) -> Result<(u64, u64), String> {
    let line = probe_module::bench(count, lo, hi)?;
    let field = |k: &str| -> Result<u64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {k} in the module's answer {line:?}"))
    };
    Ok((field("lookup_ns=")?, field("ps_ns=")?))
}

/// Times the lookups of the `sizes` plan's addresses (see the module doc).
fn sized<W: Write>(out: &mut CaseWriter<W>, rounds: usize, bench: bool) -> Result<(), String> {
    const TEST_RUN_ADDRESSES: usize = 1000;
    let blob = std::fs::read(ksh_proto::files::FileId::SizesCheck.path())
        .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::SizesCheck.path()))?;
    let off = kaslr::kaslr_offset()?;
    let parts = if bench {
        vec![&blob[..]]
    } else {
        let records = blob_records(&blob)?;
        ksh_proto::check::split(&blob, records.div_ceil(TEST_RUN_ADDRESSES))?
    };
    let part = parts.first().ok_or("the sizes plan is empty")?;
    let n = blob_records(part)?;
    let ns = probe_module::time_blob(part, n, off, rounds as u64)?;
    let per: Vec<f64> = ns.iter().map(|&t| t as f64 / n as f64).collect();
    let mut sorted = per.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out.note(&format!(
        "sized_lookup_ns={:.1} min={:.1} max={:.1} n={n} rounds={rounds}",
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1]
    ));
    Ok(())
}

/// Records in an encoded blob.
fn blob_records(blob: &[u8]) -> Result<usize, String> {
    Ok(ksh_proto::check::split(blob, usize::MAX)?.len())
}

fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let range = kaslr::kaslr_offset().and_then(|off| {
        let r = expect::expected_addresses(&["_stext", "_etext"])?;
        Ok((r[0].wrapping_add(off), r[1].wrapping_add(off)))
    });
    let (lo, hi) = match range {
        Ok(r) => r,
        Err(e) => return out.case("measured", Verdict::Fail(vec![e])),
    };
    let bench = bench_rounds();
    let n = bench.unwrap_or(1);
    let count = lookups_per_round(bench.is_some());
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        match measure(lo, hi, count) {
            Ok(s) => {
                if bench.is_some() {
                    out.note(&format!(
                        "round {} lookup_ns {} format_ns {}",
                        i + 1,
                        s.0,
                        s.1
                    ));
                }
                samples.push(s);
            }
            Err(e) => return out.case("measured", Verdict::Fail(vec![e])),
        }
    }
    if let Err(e) = sized(out, n, bench.is_some()) {
        return out.case("measured", Verdict::Fail(vec![e]));
    }
    let lookup = median(samples.iter().map(|s| s.0).collect());
    let format = median(samples.iter().map(|s| s.1).collect());
    out.note(&format!(
        "lookup_ns={lookup} format_ns={format} n={count} rounds={n}"
    ));
    out.case("measured", Verdict::Pass);
}
