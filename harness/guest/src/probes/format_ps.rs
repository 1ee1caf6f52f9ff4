//! `format-pS`: `%pS` of a sample of text addresses (function starts and
//! middles) prints exactly `name+0xOFF/0xSIZE` with the ELF size. `shape`
//! checks name and offset only, which size-blind kernels also get right.

use std::io::Write;

use crate::ktap::CaseWriter;
use ksh_proto::files::{self, FormatPsLine};

use crate::{expect, kaslr, probe_module};

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let setup = || -> Result<_, String> {
        let text = expect::expect_text(ksh_proto::files::FileId::FormatPs.path())?;
        let samples: Vec<(u64, u64, String)> = files::decode::<FormatPsLine>(&text)?
            .into_iter()
            .map(|s| (s.addr, s.offset, s.expected.to_string()))
            .collect();
        Ok((samples, kaslr::kaslr_offset()?))
    };
    let (samples, off) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    let addrs: Vec<u64> = samples
        .iter()
        .map(|(a, o, _)| a.wrapping_add(off) + o)
        .collect();
    let answers = match probe_module::lookup(&addrs) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    println!("# {} %pS samples", samples.len());
    let (mut bad_shape, mut bad_full) = (Vec::new(), Vec::new());
    for ((_, _, want), a) in samples.iter().zip(&answers) {
        // `name+0xOFF/` must match; the size after the slash is `real-size`'s.
        let prefix = &want[..=want.rfind('/').unwrap_or(want.len() - 1)];
        if !a.ps.starts_with(prefix) {
            bad_shape.push(format!("want {prefix}..., got {}", a.ps));
        }
        if &a.ps != want {
            bad_full.push(format!("want {want}, got {}", a.ps));
        }
    }
    let empty = format!(
        "{} is empty (the host samples text functions, the fixture's among them)",
        ksh_proto::files::FileId::FormatPs.path()
    );
    out.checked_items(
        "shape",
        samples.len(),
        "%pS with a wrong name or offset",
        &bad_shape,
        &empty,
    );
    out.checked_items(
        "real-size",
        samples.len(),
        "%pS not exactly name+0xOFF/0xELFSIZE",
        &bad_full,
        &empty,
    );
}
