//! `kprobes`: a kprobe at `function+size` (the first byte past a function
//! that is followed by a gap, not by another symbol) is refused; one at the
//! start of a function is accepted. Needs CONFIG_KPROBES; skipped without
//! (as the registry's `APPLICABILITY` declares).

use std::io::Write;

use super::kernel::{self, hex};
use crate::ktap::CaseWriter;

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    if out.skip_if_not_applicable("past-end-refused") {
        out.skip_if_not_applicable("inside-accepted");
        return;
    }
    let setup = || -> Result<_, String> {
        let mut targets = Vec::new();
        for l in kernel::read_lines(ksh_proto::EXPECT_KPROBES)? {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            if f.len() == 3 && f[1] == "past-end" {
                targets.push((hex(f[0])?, f[2].to_string()));
            }
        }
        let proc = kernel::proc_kallsyms_where(|n, m| {
            n == "ksh_probe_target" && m == Some(ksh_proto::MODULE_NAME)
        })?;
        let inside = proc
            .iter()
            .find(|s| {
                s.name == "ksh_probe_target" && s.module.as_deref() == Some(ksh_proto::MODULE_NAME)
            })
            .map(|s| s.addr)
            .ok_or("ksh_probe_target [ksh_probe] is not in /proc/kallsyms")?;
        Ok((targets, kernel::kaslr_offset()?, inside))
    };
    let (targets, off, inside) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    let mut addrs: Vec<u64> = targets.iter().map(|t| t.0.wrapping_add(off)).collect();
    addrs.push(inside);
    let rcs = match kernel::kprobe(&addrs) {
        Ok(r) => r,
        Err(e) => return out.fail_rest(&e),
    };
    let bad: Vec<String> = targets
        .iter()
        .zip(&rcs)
        .filter(|(_, &rc)| rc == 0)
        .map(|((a, n), _)| format!("{n}+size ({a:#x}): want refused, kernel accepted the kprobe"))
        .collect();
    out.checked_items(
        "past-end-refused",
        targets.len(),
        "past-the-end kprobes accepted",
        &bad,
        "no past-end target in /ksh/expect/kprobes.txt (the fixture guarantees kallsyms_fixture_anchor)",
    );
    let rc = *rcs.last().unwrap();
    let bad = if rc == 0 {
        Vec::new()
    } else {
        vec![format!(
            "ksh_probe_target+0x0 ({inside:#x}): want accepted, kernel refused with {rc}"
        )]
    };
    out.checked_items("inside-accepted", 1, "kprobes refused", &bad, "");
}
