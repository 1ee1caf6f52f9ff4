//! `weak-kept`: `__weak` functions that nothing overrode keep their symbol:
//! listed in `/proc/kallsyms` under their name, and found by address with
//! their ELF size.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::io::Write;

use crate::ktap::CaseWriter;
use ksh_proto::files::{self, WeakKeptLine};

use crate::{expect, kaslr, probe_module, proc_kallsyms};

/// A kept weak function, as `weak-kept.txt` lists it.
type Kept<'t> = WeakKeptLine<'t>;

const EMPTY: &str =
    "no weak function survived the link in this build (the fixture keeps kallsyms_fixture_weak_kept)";

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let Some(text) = out.setup(expect::expect_text(
        ksh_proto::files::FileId::WeakKept.path(),
    )) else {
        return;
    };
    let setup = || -> Result<_, String> {
        let kept = files::decode::<Kept>(&text)?;
        let off = kaslr::kaslr_offset()?;
        let addrs: HashSet<u64> = kept.iter().map(|k| k.addr).collect();
        let names: HashSet<&str> = kept.iter().map(|k| k.name).collect();
        let groups = expect::size_groups_where(|a| addrs.contains(&a))?;
        let proc = proc_kallsyms::proc_kallsyms_where(|n, m| m.is_none() && names.contains(n))?;
        Ok((kept, off, groups, proc))
    };
    let (kept, off, groups, proc) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    println!("# {} weak functions kept", kept.len());
    by_name(out, &kept, off, &proc);
    let addrs: Vec<u64> = kept.iter().map(|k| k.addr.wrapping_add(off)).collect();
    let answers = match probe_module::lookup(&addrs) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    let looked_up = LookedUp {
        kept: &kept,
        group_of: groups.iter().map(|g| (g.addr, g)).collect(),
        answers,
    };
    by_address(out, &looked_up);
    size(out, &looked_up);
}

/// The kept functions, the `sizes.txt` groups at their addresses, and the
/// kernel's answer for each.
struct LookedUp<'a> {
    kept: &'a [Kept<'a>],
    group_of: HashMap<u64, &'a expect::Group>,
    answers: Vec<probe_module::Lookup>,
}

impl LookedUp<'_> {
    /// What `judge` says is wrong with each answer (given the function,
    /// the answer and the group at its address), in order.
    fn wrong(
        &self,
        judge: impl Fn(&Kept, &probe_module::Lookup, Option<&expect::Group>) -> Option<String>,
    ) -> Vec<String> {
        self.kept
            .iter()
            .zip(&self.answers)
            .filter_map(|(k, a)| judge(k, a, self.group_of.get(&k.addr).copied()))
            .collect()
    }
}

/// `by-name`: `/proc/kallsyms` lists each kept weak function by name, at
/// its address moved by `off`, with its type.
fn by_name<W: Write>(
    out: &mut CaseWriter<W>,
    kept: &[Kept],
    off: u64,
    proc: &[proc_kallsyms::ProcSym],
) {
    let mut by_name: HashMap<&str, Vec<(u64, char)>> = HashMap::default();
    for s in proc.iter().filter(|s| s.module.is_none()) {
        by_name.entry(&s.name).or_default().push((s.addr, s.ty));
    }
    let mut bad = Vec::new();
    for k in kept {
        let want = (k.addr.wrapping_add(off), k.ty);
        let got = by_name.get(k.name).cloned().unwrap_or_default();
        if !got.contains(&want) {
            bad.push(format!(
                "{} {} {:#x}: /proc/kallsyms has {}",
                k.ty,
                k.name,
                want.0,
                if got.is_empty() {
                    "no such name".to_string()
                } else {
                    got.iter()
                        .map(|(a, t)| format!("{t} {a:#x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    }
    out.checked_items(
        "by-name",
        kept.len(),
        "weak functions not listed by name",
        &bad,
        EMPTY,
    );
}

/// `by-address`: a lookup of each one's address gives it (or an alias at
/// the address), offset 0.
fn by_address<W: Write>(out: &mut CaseWriter<W>, l: &LookedUp) {
    let bad = l.wrong(|k, a, group| {
        let names: Vec<String> = group
            .map(|g| g.names.clone())
            .unwrap_or_else(|| vec![k.name.to_string()]);
        (!a.found || a.offset != 0 || !names.contains(&a.name))
            .then(|| format!("{} ({:#x}): {}", k.name, k.addr, a.describe()))
    });
    out.checked_items(
        "by-address",
        l.kept.len(),
        "weak functions not found at their address",
        &bad,
        EMPTY,
    );
}

/// `size`: the lookup gives the ELF size (an alias's own size when it
/// named an alias).
fn size<W: Write>(out: &mut CaseWriter<W>, l: &LookedUp) {
    let bad = l.wrong(|k, a, group| {
        let ok = match group {
            Some(g) if a.name != k.name => g.accepted_sizes(&a.name),
            _ => vec![k.size],
        };
        (!a.found || !ok.contains(&a.size)).then(|| {
            format!(
                "{} ({:#x}) ELF size {:#x}: {}",
                k.name,
                k.addr,
                k.size,
                a.describe()
            )
        })
    });
    out.checked_items(
        "size",
        l.kept.len(),
        "weak functions with a size other than the ELF size",
        &bad,
        EMPTY,
    );
}
