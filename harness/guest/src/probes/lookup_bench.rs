//! `lookup-bench`: the probe module times `ksh_proto::LOOKUP_BENCH_COUNT`
//! lookups (sprint_symbol) and `%pS` formats of random addresses in
//! `[_stext, _etext)`. The figures go out as a note line
//! (`# lookup_ns=N format_ns=M`) that `cargo xtask bench` reads; the case
//! only fails when the kernel could not be measured.

use std::io::Write;

use super::kernel;
use crate::ktap::{CaseWriter, Verdict};

fn measure() -> Result<(u64, u64), String> {
    let offset = kernel::kaslr_offset()?;
    let range = kernel::expected_addresses(&["_stext", "_etext"])?;
    let line = kernel::bench(
        ksh_proto::LOOKUP_BENCH_COUNT,
        range[0].wrapping_add(offset),
        range[1].wrapping_add(offset),
    )?;
    let field = |k: &str| -> Result<u64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {k} in the module's answer {line:?}"))
    };
    Ok((field("lookup_ns=")?, field("ps_ns=")?))
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    match measure() {
        Ok((lookup, format)) => {
            out.note(&format!(
                "lookup_ns={lookup} format_ns={format} n={}",
                ksh_proto::LOOKUP_BENCH_COUNT
            ));
            out.case("measured", Verdict::Pass);
        }
        Err(e) => out.case("measured", Verdict::Fail(vec![e])),
    }
}
