//! The probes, one module each. [`run`] dispatches by registry name; a probe
//! named in `ksh_proto::PROBES` but missing here fails all its cases loudly.

mod boot;
mod proc_kallsyms;

use std::io::Write;

use ksh_proto::ProbeSpec;

use crate::ktap::CaseWriter;

pub fn run<W: Write>(spec: &'static ProbeSpec, out: &mut CaseWriter<W>) {
    match spec.name {
        "boot" => boot::run(out),
        "proc-kallsyms" => proc_kallsyms::run(out),
        other => out.fail_rest(&format!(
            "the guest has no implementation of probe '{other}'"
        )),
    }
}
