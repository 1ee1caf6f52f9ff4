//! The probes, one module each. [`run`] dispatches by registry name; a probe
//! named in `ksh_proto::PROBES` but missing here fails all its cases loudly.

mod backtrace;
mod boot;
mod format_ps;
mod ftrace;
mod kallsyms_selftest;
mod kallsyms_sizes_file;
mod kprobes;
mod lookup_bench;
mod module_symbols;
mod nested_symbols;
mod proc_kallsyms;
mod sizes;
mod unsized_symbols;
mod vmcoreinfo;
mod weak_kept;
mod weak_orphans;

use std::io::Write;

use ksh_proto::ProbeSpec;

use crate::ktap::CaseWriter;

/// The kernel's kallsyms symbol count as the host computed it (0 when
/// unknown), for the probes' timeouts.
pub fn symbols_in_build() -> u64 {
    crate::expect::build_info().symbols()
}

/// Reads `/proc/kallsyms` once for the whole boot (after the probe module
/// is loaded, so its symbols are listed) and leaves it for every probe.
/// Returns a line for the report.
pub fn snapshot_proc_kallsyms() -> String {
    let started = std::time::Instant::now();
    match crate::proc_kallsyms::read_proc_kallsyms() {
        Ok(text) => {
            crate::proc_kallsyms::save_proc_kallsyms_snapshot(&text);
            format!(
                "# ksh: /proc/kallsyms read once ({} bytes) in {} ms\n",
                text.len(),
                started.elapsed().as_millis()
            )
        }
        // Each probe then reads the live file itself and reports any error.
        Err(e) => format!("# ksh: no /proc/kallsyms snapshot: {e}\n"),
    }
}

pub fn run<W: Write>(spec: &'static ProbeSpec, out: &mut CaseWriter<W>) {
    match spec.name {
        "boot" => boot::run(out),
        "proc-kallsyms" => proc_kallsyms::run(out),
        "kallsyms-sizes-file" => kallsyms_sizes_file::run(out),
        "vmcoreinfo" => vmcoreinfo::run(out),
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
