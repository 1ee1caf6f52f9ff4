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
    let m = ksh_proto::MODULE_NAME;
    let listed: HashMap<&str, u64> = proc
        .iter()
        .filter(|s| s.module.as_deref() == Some(m))
        .map(|s| (s.name.as_str(), s.addr))
        .collect();
    let mut bad_found = Vec::new();
    let mut present = Vec::new();
    // Functions whose address the module itself reports (linker-resolved,
    // `features`) are looked up there and must be listed there; the rest
    // only as /proc/kallsyms lists them.
    let mut independent = 0;
    for (n, s) in &fns {
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
    let addrs: Vec<u64> = present.iter().map(|p| p.2).collect();
    let answers = match probe_module::lookup(&addrs) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    let mut bad_size = Vec::new();
    for ((n, s, _), a) in present.iter().zip(&answers) {
        if !a.found || &&a.name != n || a.offset != 0 || a.module.as_deref() != Some(m) {
            bad_found.push(format!("{n}: want {n}+0x0 [{m}], kernel {}", a.describe()));
        }
        let want = format!("{n}+0x0/{s:#x} [{m}]");
        if a.ps != want {
            bad_size.push(format!("want {want}, got {}", a.ps));
        }
    }
    println!(
        "# {} module functions, {} listed in /proc/kallsyms, {independent} at the addresses the module reports",
        fns.len(),
        present.len()
    );
    let empty = format!(
        "no module function in {} (the probe module has several)",
        ksh_proto::files::FileId::ModuleSyms.path()
    );
    out.checked_items(
        "found",
        fns.len(),
        "module functions not found as fn+0x0 [ksh_probe]",
        &bad_found,
        &empty,
    );
    out.checked_items(
        "sizes",
        present.len(),
        "module functions without their ELF size",
        &bad_size,
        &empty,
    );
}
