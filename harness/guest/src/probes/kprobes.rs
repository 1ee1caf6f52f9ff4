//! `kprobes`: a kprobe at `function+size` (the first byte past a function
//! that is followed by a gap, not by another symbol) is refused; one at the
//! start of a function is accepted. Needs CONFIG_KPROBES; skipped without.

use std::io::Write;

use super::kernel::{self, hex, summarize_detail};
use crate::ktap::{CaseWriter, Verdict};

const NEEDS: &str = "CONFIG_KPROBES is not set in this kernel (the check needs CONFIG_KPROBES=y)";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    if kernel::build_info().get("kprobes").map(String::as_str) != Some("1") {
        out.case("past-end-refused", Verdict::Skip(NEEDS.into()));
        out.case("inside-accepted", Verdict::Skip(NEEDS.into()));
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
        .map(|((a, n), _)| format!("{n}+size ({a:#x}): kprobe accepted"))
        .collect();
    out.case(
        "past-end-refused",
        if targets.is_empty() {
            Verdict::Skip("no function followed by a non-padding gap in this build".into())
        } else if bad.is_empty() {
            Verdict::Pass
        } else {
            let mut d = vec![format!(
                "{} of {} past-the-end kprobes accepted",
                bad.len(),
                targets.len()
            )];
            d.extend(summarize_detail("past-the-end kprobes accepted", &bad));
            Verdict::Fail(d)
        },
    );
    let rc = *rcs.last().unwrap();
    out.case(
        "inside-accepted",
        if rc == 0 {
            Verdict::Pass
        } else {
            Verdict::Fail(vec![format!(
                "kprobe at ksh_probe_target+0x0 ({inside:#x}) refused: {rc}"
            )])
        },
    );
}
