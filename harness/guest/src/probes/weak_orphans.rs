//! `weak-orphans`: the leftover body of an overridden `__weak` function has
//! no symbol; lookups of its first, middle and last byte must find none
//! (not the preceding function), and `%pS` must print the bare address.

use std::io::Write;

use crate::ktap::{CaseWriter, Verdict};
use ksh_proto::files::{self, OrphanLine};

use crate::{expect, kaslr, probe_module};

/// An orphaned body, as `orphans.txt` lists it.
type Orphan<'t> = OrphanLine<'t>;

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let Some(text) = out.setup(expect::expect_text(
        ksh_proto::files::FileId::Orphans.path(),
    )) else {
        return;
    };
    let read = files::decode::<Orphan>(&text).and_then(|v| Ok((v, kaslr::kaslr_offset()?)));
    let Some((orphans, off)) = out.setup(read) else {
        return;
    };
    let looked_up = match look_up(&orphans, off) {
        Ok(l) => l,
        Err(e) => return out.fail_rest(&e),
    };
    println!(
        "# {} orphaned weak bodies ({} fixture), {} addresses",
        orphans.len(),
        orphans.iter().filter(|o| is_fixture(o)).count(),
        looked_up.addrs.len()
    );
    fixture_case(out, &looked_up);
    all(out, &looked_up);
    preceding_start(out, &orphans);
}

/// The kernel's answers for the start, middle and last byte of each
/// orphan, moved by the KASLR offset `off`.
fn look_up<'a>(orphans: &'a [Orphan<'a>], off: u64) -> Result<LookedUp<'a>, String> {
    let mut addrs = Vec::new();
    let mut owner = Vec::new();
    for (i, o) in orphans.iter().enumerate() {
        let mut pts = vec![o.start, o.start + (o.end - o.start) / 2, o.end - 1];
        pts.dedup();
        for p in pts {
            addrs.push(p.wrapping_add(off));
            owner.push(i);
        }
    }
    Ok(LookedUp {
        answers: probe_module::lookup(&addrs)?,
        orphans,
        off,
        addrs,
        owner,
    })
}

/// The kernel's answers for addresses inside the orphans.
struct LookedUp<'a> {
    orphans: &'a [Orphan<'a>],
    /// The KASLR offset.
    off: u64,
    /// Runtime addresses, the orphan each is in, the kernel's answer.
    addrs: Vec<u64>,
    owner: Vec<usize>,
    answers: Vec<probe_module::Lookup>,
}

fn is_fixture(o: &Orphan) -> bool {
    o.name.starts_with(ksh_proto::FIXTURE_PREFIX)
}

const WHAT: &str = "addresses inside orphaned weak bodies with a symbol";

/// How many addresses (of the fixture's orphans only, or of all) were
/// checked, and those that have a symbol or a `%pS` other than the bare
/// address.
fn check(l: &LookedUp, only_fixture: bool) -> (usize, Vec<String>) {
    let off = l.off;
    let mut n = 0;
    let mut bad = Vec::new();
    for ((a, &i), ans) in l.addrs.iter().zip(&l.owner).zip(&l.answers) {
        let o = &l.orphans[i];
        if only_fixture && !is_fixture(o) {
            continue;
        }
        n += 1;
        let bare = format!("0x{a:x}");
        if ans.found || ans.ps != bare {
            bad.push(format!(
                    "{} [{:#x},{:#x}) at +{:#x} (size-blind: {}): want no symbol and %pS {bare}, kernel {} with %pS {}",
                    o.name,
                    o.start,
                    o.end,
                    a.wrapping_sub(off) - o.start,
                    o.preceding.unwrap_or("-"),
                    if ans.found { ans.describe() } else { "no symbol".into() },
                    ans.ps
                ));
        }
    }
    (n, bad)
}

/// `fixture`: no address inside the fixture's orphaned bodies has a symbol.
fn fixture_case<W: Write>(out: &mut CaseWriter<W>, l: &LookedUp) {
    let (n, bad) = check(l, true);
    out.checked_items(
        "fixture",
        n,
        WHAT,
        &bad,
        &format!(
            "no orphaned {}* body in this build: is the fixture patch applied?",
            ksh_proto::FIXTURE_PREFIX
        ),
    );
}

/// `all`: no address inside any orphaned body has a symbol, and the host
/// located enough of them for that to mean something.
fn all<W: Write>(out: &mut CaseWriter<W>, l: &LookedUp) {
    let (n, mut bad) = check(l, false);
    // The host locates the bodies; a search that found few of them would
    // leave this case checking little while it says "all".
    let info = expect::build_info();
    let count = |k: &str| info.get(k).and_then(|v| v.parse::<u64>().ok());
    match (
        count(ksh_proto::WEAK_OVERRIDDEN_KEY),
        count(ksh_proto::WEAK_LOCATED_KEY),
    ) {
        (Some(total), Some(located)) => {
            println!("# {located} of {total} overridden weak functions located by the host");
            if located * 100 < total * ksh_proto::WEAK_LOCATED_MIN_PERCENT {
                bad.push(format!(
                    "the host located only {located} of {total} overridden weak functions' bodies (fewer than {} %): this case would check too little",
                    ksh_proto::WEAK_LOCATED_MIN_PERCENT
                ));
            }
        }
        _ => bad.push(format!(
            "{} has no {}= or {}= line: how many orphans exist is unknown",
            ksh_proto::files::FileId::BuildInfo.path(),
            ksh_proto::WEAK_OVERRIDDEN_KEY,
            ksh_proto::WEAK_LOCATED_KEY
        )),
    }
    out.checked_items(
        "all",
        n,
        WHAT,
        &bad,
        "the host found no orphaned weak bodies in this build (the fixture guarantees one)",
    );
}

/// `preceding-start`: the function a size-blind kernel blames for each
/// orphan is itself found at its own start, as `name+0x0`. True on every
/// kernel, so on the baseline it shows the probe ran and its lookups work
/// while `fixture` and `all` fail.
fn preceding_start<W: Write>(out: &mut CaseWriter<W>, orphans: &[Orphan]) {
    let wanted: Vec<&str> = orphans.iter().filter_map(|o| o.preceding).collect();
    // Where the host's table puts them (plus the KASLR offset), and the
    // names it has at those addresses: not /proc/kallsyms, which is what
    // is under test.
    let setup = || -> Result<_, String> {
        let text = expect::expect_text(ksh_proto::files::FileId::Kallsyms.path())?;
        let table = ksh_proto::files::decode::<ksh_proto::files::KallsymsLine>(&text)?
            .into_iter()
            .map(|k| (k.addr, k.name.to_string()))
            .collect::<Vec<(u64, String)>>();
        Ok((table, kaslr::kaslr_offset()?))
    };
    let (table, off) = match setup() {
        Ok(x) => x,
        Err(e) => {
            return out.case(
                "preceding-start",
                Verdict::Fail(vec![format!("setup: {e}")]),
            )
        }
    };
    let mut addrs: Vec<(u64, &str)> = Vec::new();
    for p in &wanted {
        for (a, _) in table.iter().filter(|(_, n)| n == p) {
            let a = a.wrapping_add(off);
            if !addrs.iter().any(|(x, _)| *x == a) {
                addrs.push((a, p));
            }
        }
    }
    let wanted_addrs: rustc_hash::FxHashSet<u64> = addrs.iter().map(|(a, _)| *a).collect();
    let mut aliases: rustc_hash::FxHashMap<u64, Vec<&str>> = Default::default();
    for (x, n) in &table {
        let x = x.wrapping_add(off);
        if wanted_addrs.contains(&x) {
            aliases.entry(x).or_default().push(n.as_str());
        }
    }
    let names_at = |a: u64| -> Vec<&str> { aliases.get(&a).cloned().unwrap_or_default() };
    let mut bad: Vec<String> = wanted
        .iter()
        .filter(|p| !table.iter().any(|(_, n)| n == *p))
        .map(|p| format!("{p}: not in {}", ksh_proto::files::FileId::Kallsyms.path()))
        .collect();
    let q: Vec<u64> = addrs.iter().map(|(a, _)| *a).collect();
    let answers = match probe_module::lookup(&q) {
        Ok(a) => a,
        Err(e) => return out.case("preceding-start", Verdict::Fail(vec![e])),
    };
    for ((a, p), ans) in addrs.iter().zip(&answers) {
        let ok = ans.found
            && ans.offset == 0
            && (ans.name == *p || names_at(*a).contains(&ans.name.as_str()));
        if !ok {
            bad.push(format!(
                "{p} ({a:#x}): want {p}+0x0, kernel {}",
                ans.describe()
            ));
        }
    }
    out.checked_items(
        "preceding-start",
        wanted.len(),
        "functions before orphans not found at their start",
        &bad,
        "no orphan with a preceding function in the expectations",
    );
}
