//! `module-symbols`: the probe module's own functions, as `/proc/kallsyms`
//! lists them, are looked up by `%pS` as `fn+0x0/0xSIZE [ksh_probe]` with
//! their ELF sizes from the built `.ko`.

use rustc_hash::FxHashMap as HashMap;
use std::io::Write;

use crate::ktap::CaseWriter;
use crate::support;

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let setup = || -> Result<_, String> {
        let fns = support::module_syms()?;
        support::module_file("lookup")?;
        let ours = |_: &str, m: Option<&str>| m == Some(ksh_proto::MODULE_NAME);
        Ok((fns, support::proc_kallsyms_where(ours)?))
    };
    let (fns, proc) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    let m = ksh_proto::MODULE_NAME;
    let listed: HashMap<&str, u64> = proc
        .iter()
        .filter(|s| s.module.as_deref() == Some(m))
        .map(|s| (s.name.as_str(), s.addr))
        .collect();
    let mut bad_found = Vec::new();
    let mut present = Vec::new();
    for (n, s) in &fns {
        match listed.get(n.as_str()) {
            Some(&a) => present.push((n, *s, a)),
            None => bad_found.push(format!("{n}: not in /proc/kallsyms as [{m}]")),
        }
    }
    let addrs: Vec<u64> = present.iter().map(|p| p.2).collect();
    let answers = match support::lookup(&addrs) {
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
        "# {} module functions, {} listed in /proc/kallsyms",
        fns.len(),
        present.len()
    );
    let empty = format!(
        "no module function in {} (the probe module has several)",
        ksh_proto::EXPECT_MODULE_SYMS
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
