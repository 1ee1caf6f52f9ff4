//! `module-symbols`: the probe module's own functions are listed in
//! `/proc/kallsyms` and looked up by `%pS` as `fn+0x0/0xSIZE [ksh_probe]`
//! with their ELF sizes from the built `.ko`. Those whose address the
//! module reports itself (`features`: what the module loader's relocations
//! gave them, not kallsyms) must be listed at that address and are looked
//! up there, so kallsyms is not checked against itself alone.

use rustc_hash::FxHashMap as HashMap;
use std::io::Write;

use crate::ktap::CaseWriter;
use crate::{expect, probe_module, proc_kallsyms};

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let setup = || -> Result<_, String> {
        let fns = expect::module_syms()?;
        probe_module::module_file("lookup")?;
        let ours = |_: &str, m: Option<&str>| m == Some(ksh_proto::MODULE_NAME);
        Ok((
            fns,
            proc_kallsyms::proc_kallsyms_where(ours)?,
            probe_module::module_features()?,
        ))
    };
    let (fns, proc, features) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&format!("setup: {e}")),
    };
    let listing = listing(&fns, &proc, &features);
    let addrs: Vec<u64> = listing.present.iter().map(|p| p.2).collect();
    let answers = match probe_module::lookup(&addrs) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    println!(
        "# {} module functions, {} listed in /proc/kallsyms, {} at the addresses the module reports",
        fns.len(),
        listing.present.len(),
        listing.independent
    );
    found(out, &fns, &listing, &answers);
    sizes(out, &listing, &answers);
}

/// The module's functions as `/proc/kallsyms` lists them.
struct Listing<'a> {
    /// (name, ELF size, address to look up) of the listed ones.
    present: Vec<(&'a String, u64, u64)>,
    /// Functions not listed, or listed away from the module's own address.
    bad: Vec<String>,
    /// How many have an address the module itself reports.
    independent: usize,
}

/// Functions whose address the module itself reports (linker-resolved,
/// `features`) are looked up there and must be listed there; the rest
/// only as /proc/kallsyms lists them.
fn listing<'a>(
    fns: &'a [(String, u64)],
    proc: &[proc_kallsyms::ProcSym],
    features: &HashMap<String, u64>,
) -> Listing<'a> {
    let m = ksh_proto::MODULE_NAME;
    let listed: HashMap<&str, u64> = proc
        .iter()
        .filter(|s| s.module.as_deref() == Some(m))
        .map(|s| (s.name.as_str(), s.addr))
        .collect();
    let mut bad_found = Vec::new();
    let mut present = Vec::new();
    let mut independent = 0;
    for (n, s) in fns {
        let own = features.get(n.as_str()).copied();
        match (listed.get(n.as_str()), own) {
            (Some(&a), Some(o)) if a != o => bad_found.push(format!(
                "{n}: listed in /proc/kallsyms at {a:#x}, the module's code is at {o:#x}"
            )),
            (Some(&a), own) => present.push((n, *s, own.unwrap_or(a))),
            (None, _) => bad_found.push(format!("{n}: not in /proc/kallsyms as [{m}]")),
        }
        independent += own.is_some() as usize;
    }
    if independent == 0 {
        bad_found.push(format!(
            "none of the module's functions has its own address in {}/features",
            ksh_proto::MODULE_DEBUGFS
        ));
    }
    Listing {
        present,
        bad: bad_found,
        independent,
    }
}

fn empty() -> String {
    format!(
        "no module function in {} (the probe module has several)",
        ksh_proto::files::FileId::ModuleSyms.path()
    )
}

/// `found`: every function is listed as `[ksh_probe]` and looked up at
/// its start as itself, offset 0, in the module.
fn found<W: Write>(
    out: &mut CaseWriter<W>,
    fns: &[(String, u64)],
    listing: &Listing,
    answers: &[probe_module::Lookup],
) {
    let m = ksh_proto::MODULE_NAME;
    let mut bad_found = listing.bad.clone();
    for ((n, _, _), a) in listing.present.iter().zip(answers) {
        if !a.found || &&a.name != n || a.offset != 0 || a.module.as_deref() != Some(m) {
            bad_found.push(format!("{n}: want {n}+0x0 [{m}], kernel {}", a.describe()));
        }
    }
    out.checked_items(
        "found",
        fns.len(),
        "module functions not found as fn+0x0 [ksh_probe]",
        &bad_found,
        &empty(),
    );
}

/// `sizes`: `%pS` of each listed function's start shows its ELF size.
fn sizes<W: Write>(out: &mut CaseWriter<W>, listing: &Listing, answers: &[probe_module::Lookup]) {
    let m = ksh_proto::MODULE_NAME;
    let mut bad_size = Vec::new();
    for ((n, s, _), a) in listing.present.iter().zip(answers) {
        let want = format!("{n}+0x0/{s:#x} [{m}]");
        if a.ps != want {
            bad_size.push(format!("want {want}, got {}", a.ps));
        }
    }
    out.checked_items(
        "sizes",
        listing.present.len(),
        "module functions without their ELF size",
        &bad_size,
        &empty(),
    );
}
