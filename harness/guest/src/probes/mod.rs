//! The probes, one module each. [`run`] dispatches by registry name; a probe
//! named in `ksh_proto::PROBES` but missing here fails all its cases loudly.

mod backtrace;
mod boot;
mod format_ps;
mod ftrace;
mod kallsyms_selftest;
mod kernel;
mod kprobes;
mod lookup_bench;
mod module_symbols;
mod nested_symbols;
mod proc_kallsyms;
mod sizes;
mod unsized_symbols;
mod weak_kept;
mod weak_orphans;

use std::io::Write;

use ksh_proto::ProbeSpec;

use crate::ktap::CaseWriter;

pub use kernel::summarize_detail;

/// The guest's arch as the registry names it.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        a => a,
    }
}

/// Why `probe/case` does not apply to this build (registry data evaluated
/// against the build info), or None.
pub fn not_applicable(probe: &str, case: &str) -> Option<&'static str> {
    let info = kernel::build_info();
    ksh_proto::not_applicable(probe, case, arch(), &|k| info.get(k).cloned())
}

pub fn run<W: Write>(spec: &'static ProbeSpec, out: &mut CaseWriter<W>) {
    match spec.name {
        "boot" => boot::run(out),
        "proc-kallsyms" => proc_kallsyms::run(out),
        "sizes" => sizes::run(out),
        "weak-orphans" => weak_orphans::run(out),
        "weak-kept" => weak_kept::run(out),
        "format-pS" => format_ps::run(out),
        "kprobes" => kprobes::run(out),
        "backtrace" => backtrace::run(out),
        "nested-symbols" => nested_symbols::run(out),
        "unsized-symbols" => unsized_symbols::run(out),
        "ftrace" => ftrace::run(out),
        "module-symbols" => module_symbols::run(out),
        "kallsyms-selftest" => kallsyms_selftest::run(out),
        "lookup-bench" => lookup_bench::run(out),
        other => out.fail_rest(&format!(
            "the guest has no implementation of probe '{other}'"
        )),
    }
}
