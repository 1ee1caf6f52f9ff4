//! `kprobes`: the kprobes blacklist, a user of size-aware lookups (its
//! walk over the blacklisted areas steps by each symbol's size), and
//! `register_kprobe()`'s own checks:
//! - `past-end-refused`: a kprobe at `function+size` (the first byte past
//!   a function followed by a gap, not by another symbol) is refused with
//!   -ENOENT (the address has no symbol);
//! - `inside-accepted`: one at the start of a module function is accepted;
//! - `blacklist-populated`: `/sys/kernel/debug/kprobes/blacklist` has every
//!   entry the host derived from the ELF, with its exact extent, and no
//!   other (but the module's own, below);
//! - `blacklist-module`: the probe module's `.kprobes.text` functions, on
//!   both sides of an alignment gap, are blacklisted with their sizes;
//! - `blacklisted-refused`: a kprobe on the last function of each
//!   blacklisted area is refused with -EINVAL.
//!
//! A `kprobe` answer line that does not parse fails every case.
//!
//! Needs CONFIG_KPROBES; skipped without (as the registry's
//! `APPLICABILITY` declares). Every case reports how many items it checked.

use rustc_hash::FxHashMap as HashMap;
use std::collections::HashSet;
use std::io::Write;

use ksh_proto::files::{self, BlacklistLine, KprobeLine};

use crate::ktap::{CaseWriter, Verdict};
use crate::probe_module::hex;
use crate::{expect, kaslr, probe_module};

const BLACKLIST: &str = "/sys/kernel/debug/kprobes/blacklist";

struct Target {
    addr: u64,
    kind: String,
    name: String,
}

/// `(start, end, name)` of every entry of the kernel's blacklist file.
fn read_blacklist() -> Result<Vec<(u64, u64, String)>, String> {
    let text = std::fs::read_to_string(BLACKLIST).map_err(|e| format!("{BLACKLIST}: {e}"))?;
    let mut out = Vec::new();
    for l in text.lines() {
        let (range, name) = l.split_once('\t').unwrap_or((l, ""));
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| format!("{BLACKLIST}: malformed line {l:?}"))?;
        out.push((hex(a)?, hex(b)?, name.to_string()));
    }
    Ok(out)
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    if out.skip_if_not_applicable("past-end-refused") {
        for c in [
            "inside-accepted",
            "blacklist-populated",
            "blacklist-module",
            "blacklisted-refused",
        ] {
            out.skip_if_not_applicable(c);
        }
        return;
    }
    let setup = || -> Result<_, String> {
        let text = expect::expect_text(ksh_proto::files::FileId::Kprobes.path())?;
        let targets: Vec<Target> = files::decode::<KprobeLine>(&text)?
            .into_iter()
            .map(|t| Target {
                addr: t.addr,
                kind: t.kind.name().to_string(),
                name: t.name.to_string(),
            })
            .collect();
        let module_syms: HashMap<String, u64> = expect::module_syms()?.into_iter().collect();
        // The module's own functions at the addresses the module loader
        // relocated them to (its `features` file), not as kallsyms lists
        // them: kallsyms is what is under test.
        let features = probe_module::module_features()?;
        let mut module_fns = Vec::new();
        for name in ksh_proto::MODULE_KPROBES_FUNCS {
            let size = module_syms.get(*name).copied().ok_or_else(|| {
                format!(
                    "{name} is not in {}",
                    ksh_proto::files::FileId::ModuleSyms.path()
                )
            })?;
            module_fns.push((*name, probe_module::module_fn_addr(&features, name)?, size));
        }
        let inside = probe_module::module_fn_addr(&features, "ksh_probe_target")?;
        Ok((targets, kaslr::kaslr_offset()?, module_fns, inside))
    };
    let (targets, off, module_fns, inside) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&format!("setup: {e}")),
    };

    // register_kprobe() on every target, in one module session.
    let mut addrs: Vec<u64> = targets.iter().map(|t| t.addr.wrapping_add(off)).collect();
    addrs.push(inside);
    let rcs = match probe_module::kprobe(&addrs) {
        Ok(r) => r,
        Err(e) => return out.fail_rest(&e),
    };
    let k = Kprobes {
        rcs,
        // The blacklist as the kernel built it.
        listed: read_blacklist().map(Listed::new),
        targets,
        off,
        module_fns,
        inside,
    };
    refusal_case(out, &k, &PAST_END_REFUSED);
    inside_accepted(out, &k);
    if let Ok(l) = &k.listed {
        println!("# {} entries in {BLACKLIST}", l.entries.len());
    }
    blacklist_populated(out, &k);
    blacklist_module(out, &k);
    refusal_case(out, &k, &BLACKLISTED_REFUSED);
}

/// The targets, the offset and the kernel's answers for them.
struct Kprobes {
    targets: Vec<Target>,
    /// The KASLR offset.
    off: u64,
    /// The module's `.kprobes.text` functions: name, runtime address, size.
    module_fns: Vec<(&'static str, u64, u64)>,
    /// The start of a module function (runtime), the last address asked.
    inside: u64,
    /// `register_kprobe()`'s result for each target, then for `inside`.
    rcs: Vec<i64>,
    /// The kernel's blacklist, or why it could not be read.
    listed: Result<Listed, String>,
}

/// The kernel's blacklist; if it could not be read, `case` fails for it.
fn listed_or_fail<'k, W: Write>(
    out: &mut CaseWriter<W>,
    case: &str,
    k: &'k Kprobes,
) -> Option<&'k Listed> {
    match &k.listed {
        Ok(l) => Some(l),
        Err(e) => {
            out.case(case, Verdict::Fail(vec![e.clone()]));
            None
        }
    }
}

/// The kernel's blacklist, and by extent and start.
struct Listed {
    entries: Vec<(u64, u64, String)>,
    have: HashSet<(u64, u64)>,
    by_start: HashMap<u64, u64>,
}

impl Listed {
    fn new(entries: Vec<(u64, u64, String)>) -> Self {
        let have = entries.iter().map(|e| (e.0, e.1)).collect();
        let by_start = entries.iter().map(|e| (e.0, e.1)).collect();
        Listed {
            entries,
            have,
            by_start,
        }
    }
}

/// A case that every target of one kind is refused with one errno.
struct Refusal {
    case: &'static str,
    kind: &'static str,
    want: i32,
    mismatch: &'static str,
    none: &'static str,
}

/// `past-end-refused`: kprobes at a function's end are refused (-ENOENT).
const PAST_END_REFUSED: Refusal = Refusal {
    case: "past-end-refused",
    kind: "past-end",
    want: libc::ENOENT,
    mismatch: "past-the-end kprobes not refused with -ENOENT",
    none: "no past-end target in the expectations (the fixture guarantees kallsyms_fixture_anchor)",
};

/// `blacklisted-refused`: kprobes on blacklisted functions are refused
/// with -EINVAL.
const BLACKLISTED_REFUSED: Refusal = Refusal {
    case: "blacklisted-refused",
    kind: "blacklisted",
    want: libc::EINVAL,
    mismatch: "kprobes in blacklisted areas not refused with -EINVAL",
    none: "no blacklisted target in the expectations",
};

fn refusal_case<W: Write>(out: &mut CaseWriter<W>, k: &Kprobes, r: &Refusal) {
    let (n, bad) = refused(k, r.kind, -(r.want as i64));
    out.checked_items(r.case, n, r.mismatch, &bad, r.none);
}

/// Of the targets of `kind`, how many and which did not get `want`. Each
/// refusal must be the one register_kprobe() gives for its reason
/// (kernel/kprobes.c), not any error: past a function's end the address
/// has no symbol, so _kprobe_addr()'s lookup fails with -ENOENT; in a
/// blacklisted function check_kprobe_address_safe() says -EINVAL.
fn refused(k: &Kprobes, kind: &str, want: i64) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut bad = Vec::new();
    for (t, &rc) in k.targets.iter().zip(&k.rcs) {
        if t.kind != kind {
            continue;
        }
        n += 1;
        if rc != want {
            bad.push(format!(
                "{} ({:#x}, {kind}): register_kprobe() returned {}, want {}",
                t.name,
                t.addr,
                errno_name(rc),
                errno_name(want)
            ));
        }
    }
    (n, bad)
}

/// `inside-accepted`: a kprobe at a module function's start is accepted.
fn inside_accepted<W: Write>(out: &mut CaseWriter<W>, k: &Kprobes) {
    let (rc, inside) = (*k.rcs.last().unwrap(), k.inside);
    let bad = if rc == 0 {
        Vec::new()
    } else {
        vec![format!(
            "ksh_probe_target+0x0 ({inside:#x}): want accepted, kernel refused the kprobe: {rc}"
        )]
    };
    out.checked_items("inside-accepted", 1, "kprobes refused", &bad, "");
}

/// `blacklist-populated`, both ways: every entry the host derived is
/// there with its extent, and the kernel lists nothing else (but the
/// module's own functions, checked by blacklist-module): an entry
/// reaching past a function's end, as a size-blind walk makes them, is an
/// extra entry too.
fn blacklist_populated<W: Write>(out: &mut CaseWriter<W>, k: &Kprobes) {
    let Some(l) = listed_or_fail(out, "blacklist-populated", k) else {
        return;
    };
    let off = k.off;
    let populated = || -> Result<(usize, Vec<String>), String> {
        let mut n = 0;
        let mut bad = Vec::new();
        let text = expect::expect_text(ksh_proto::files::FileId::Blacklist.path())?;
        let mut expected: HashSet<(u64, u64)> = k
            .module_fns
            .iter()
            .map(|&(_, a, size)| (a, a + size))
            .collect();
        // With CONFIG_CALL_PADDING (x86_64 defconfig) objtool puts a
        // `__pfx_` symbol on the padding before each function, inside the
        // module's .kprobes.text, so the kernel's walk of that section
        // lists it too: expected when it ends exactly at its function.
        let prefixes: HashSet<(String, u64)> = k
            .module_fns
            .iter()
            .map(|&(name, a, _)| (format!("__pfx_{name}"), a))
            .collect();
        let decoded = files::decode::<BlacklistLine>(&text)?;
        for b in &decoded {
            expected.insert((b.start.wrapping_add(off), b.end.wrapping_add(off)));
        }
        for (s, e, name) in &l.entries {
            // A module's entries are named `SYMBOL [MODULE]`.
            let bare = name.split(' ').next().unwrap_or(name).to_string();
            if !expected.contains(&(*s, *e)) && !prefixes.contains(&(bare, *e)) {
                n += 1;
                bad.push(format!(
                    "{name} [{s:#x},{e:#x}): blacklisted, but no such entry is expected"
                ));
            }
        }
        for b in decoded {
            let (s, e) = (b.start.wrapping_add(off), b.end.wrapping_add(off));
            n += 1;
            if !l.have.contains(&(s, e)) {
                bad.push(match l.by_start.get(&s) {
                    Some(&got) => format!(
                        "{} [{s:#x},{e:#x}): blacklisted as [{s:#x},{got:#x})",
                        b.name
                    ),
                    None => format!("{} [{s:#x},{e:#x}): not blacklisted", b.name),
                });
            }
        }
        Ok((n, bad))
    };
    match populated() {
        Ok((n, bad)) => out.checked_items(
            "blacklist-populated",
            n,
            "blacklist entries missing, with another extent, or unexpected",
            &bad,
            "no blacklist entry in the expectations (every kernel has noinstr functions)",
        ),
        Err(e) => out.case("blacklist-populated", Verdict::Fail(vec![e])),
    }
}

/// `blacklist-module`: the module's `.kprobes.text` functions are
/// blacklisted with their extents.
fn blacklist_module<W: Write>(out: &mut CaseWriter<W>, k: &Kprobes) {
    let Some(l) = listed_or_fail(out, "blacklist-module", k) else {
        return;
    };
    let mut n = 0;
    let mut bad = Vec::new();
    for &(name, a, size) in &k.module_fns {
        n += 1;
        if !l.have.contains(&(a, a + size)) {
            bad.push(match l.by_start.get(&a) {
                Some(&got) => format!(
                    "{name} [{a:#x},{:#x}): blacklisted as [{a:#x},{got:#x})",
                    a + size
                ),
                None => format!("{name} [{a:#x},{:#x}): not blacklisted", a + size),
            });
        }
    }
    out.checked_items(
        "blacklist-module",
        n,
        "module .kprobes.text functions missing or with another extent",
        &bad,
        "",
    );
}

/// `-22 (EINVAL)` for a negative errno, `0 (accepted)` for 0.
fn errno_name(rc: i64) -> String {
    let name = match -rc {
        0 => "accepted",
        e if e == libc::ENOENT as i64 => "ENOENT",
        e if e == libc::EINVAL as i64 => "EINVAL",
        e if e == libc::EILSEQ as i64 => "EILSEQ",
        e if e == libc::EBUSY as i64 => "EBUSY",
        e if e == libc::EEXIST as i64 => "EEXIST",
        e if e == libc::ENOMEM as i64 => "ENOMEM",
        _ => "?",
    };
    format!("{rc} ({name})")
}
