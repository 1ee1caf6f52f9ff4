//! `nested-symbols`: a sized symbol nested inside another sized symbol
//! (assembly that ends an inner label with `.size`) does not cut the
//! enclosing symbol short: addresses of the enclosing symbol past the
//! inner one's end resolve to the enclosing symbol, with its size. The
//! fixture patch provides one such pair on every arch
//! (`kallsyms_fixture_nested_outer`/`_inner`); real kernels have more.
//! `inner-start`: the inner symbols themselves are found at their start
//! (name and offset 0), on every kernel.

use std::io::Write;

use crate::ktap::CaseWriter;
use ksh_proto::files::{self, NestedLine};

use crate::{expect, kaslr, probe_module};

/// An address inside an enclosing symbol past a nested one's end, as
/// `nested.txt` lists it.
type Point<'t> = NestedLine<'t>;

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let Some(text) = out.setup(expect::expect_text(ksh_proto::files::FileId::Nested.path())) else {
        return;
    };
    let read = files::decode::<Point>(&text).and_then(|v| Ok((v, kaslr::kaslr_offset()?)));
    let Some((points, off)) = out.setup(read) else {
        return;
    };
    if !points
        .iter()
        .any(|p| p.outer.starts_with(ksh_proto::FIXTURE_PREFIX))
    {
        return out.fail_rest(&format!(
            "0 checked: no nested {}* pair in {}: is the fixture patch applied?",
            ksh_proto::FIXTURE_PREFIX,
            ksh_proto::files::FileId::Nested.path()
        ));
    }
    let mut inners: Vec<(u64, &str)> = points.iter().map(|p| (p.inner_start, p.inner)).collect();
    inners.sort();
    inners.dedup();
    let mut addrs: Vec<u64> = points.iter().map(|p| p.addr.wrapping_add(off)).collect();
    addrs.extend(inners.iter().map(|i| i.0.wrapping_add(off)));
    let answers = match probe_module::lookup_no_ps(&addrs) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    let (outer, inner) = answers.split_at(points.len());
    let looked_up = LookedUp {
        points: &points,
        inners: &inners,
        outer,
        inner,
    };
    enclosing(out, &looked_up);
    inner_start(out, &looked_up);
}

/// The points and nested starts with the kernel's answers for each.
struct LookedUp<'a> {
    points: &'a [Point<'a>],
    inners: &'a [(u64, &'a str)],
    outer: &'a [probe_module::Lookup],
    inner: &'a [probe_module::Lookup],
}

/// `enclosing`: each address past a nested symbol is looked up as the
/// enclosing symbol, with its offset and size.
fn enclosing<W: Write>(out: &mut CaseWriter<W>, l: &LookedUp) {
    let points = l.points;
    let mut bad = Vec::new();
    for (p, a) in points.iter().zip(l.outer) {
        let want_off = p.addr - p.outer_start;
        if !(a.found && a.name == p.outer && a.offset == want_off && a.size == p.outer_size) {
            bad.push(format!(
                "{:#x} (past {}, inside {}): want {}+{want_off:#x}/{:#x}, kernel {}",
                p.addr,
                p.inner,
                p.outer,
                p.outer,
                p.outer_size,
                a.describe()
            ));
        }
    }
    out.checked_items(
        "enclosing",
        points.len(),
        "enclosing-symbol addresses size-blind or cut short",
        &bad,
        "no nested pair in the expectations",
    );
}

/// `inner-start`: each nested symbol's start is looked up as itself.
fn inner_start<W: Write>(out: &mut CaseWriter<W>, l: &LookedUp) {
    let inners = l.inners;
    let bad: Vec<String> = inners
        .iter()
        .zip(l.inner)
        .filter(|((_, n), a)| !(a.found && a.name == *n && a.offset == 0))
        .map(|((s, n), a)| format!("{s:#x}: want {n}+0x0, kernel {}", a.describe()))
        .collect();
    out.checked_items(
        "inner-start",
        inners.len(),
        "nested symbols not found at their start",
        &bad,
        "no nested pair in the expectations",
    );
}
