//! `proc-kallsyms`: `/proc/kallsyms` in its documented format, listing
//! exactly the symbols the host derived from `vmlinux` and the kallsyms
//! filtering rules, at the `vmlinux` addresses (plus the KASLR offset).

use rustc_hash::FxHashMap as HashMap;
use std::io::Write;

use crate::ktap::{summarize, CaseWriter, Verdict};

/// One `/proc/kallsyms` or expectation line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Sym<'a> {
    addr: u64,
    ty: char,
    name: &'a str,
}

/// One `/proc/kallsyms` line (the guest's one parser,
/// [`crate::proc_kallsyms::parse_proc_line`]) and whether it belongs to a module
/// (or another `[...]` owner such as ftrace trampolines).
fn parse_proc_line(line: &str) -> Result<(Sym<'_>, bool), String> {
    let p = crate::proc_kallsyms::parse_proc_line(line)?;
    Ok((
        Sym {
            addr: p.addr,
            ty: p.ty,
            name: p.name,
        },
        p.module.is_some(),
    ))
}

fn read_expected(text: &str) -> Result<Vec<Sym<'_>>, String> {
    Ok(
        ksh_proto::files::decode::<ksh_proto::files::KallsymsLine>(text)?
            .into_iter()
            .map(|k| Sym {
                addr: k.addr,
                ty: k.ty,
                name: k.name,
            })
            .collect(),
    )
}

/// `expected` minus `actual` and `actual` minus `expected`, as multisets.
/// The expectations are written in the kernel's listing order, so a
/// correct kernel matches them line for line: that case is one pass with
/// no hashing (tens of thousands of hash-map entries cost a noticeable
/// part of a second under TCG).
fn multiset_diff<K: std::hash::Hash + Eq + Clone>(
    expected: &[K],
    actual: &[K],
) -> (Vec<K>, Vec<K>) {
    if expected == actual {
        return (Vec::new(), Vec::new());
    }
    let mut counts: HashMap<&K, i64> =
        HashMap::with_capacity_and_hasher(expected.len(), Default::default());
    for k in expected {
        *counts.entry(k).or_default() += 1;
    }
    for k in actual {
        *counts.entry(k).or_default() -= 1;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (k, c) in counts {
        for _ in 0..c.max(0) {
            missing.push(k.clone());
        }
        for _ in 0..(-c).max(0) {
            extra.push(k.clone());
        }
    }
    (missing, extra)
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    // The text /init read once for the whole boot (one reader's view of
    // the file, as any tool sees it); the live file if there is none.
    let text = match crate::proc_kallsyms::proc_kallsyms_text() {
        Ok(t) => t,
        Err(e) => return out.fail_rest(&format!("cannot read /proc/kallsyms: {e}")),
    };
    let vmlinux_syms = format(out, &text);
    let expected_text = match std::fs::read_to_string(ksh_proto::files::FileId::Kallsyms.path()) {
        Ok(t) => t,
        Err(e) => {
            return out.fail_rest(&format!(
                "{}: {e}",
                ksh_proto::files::FileId::Kallsyms.path()
            ))
        }
    };
    let expected = match read_expected(&expected_text) {
        Ok(e) => e,
        Err(e) => {
            out.fail_rest(&e);
            return;
        }
    };
    names_and_types(out, &expected, &vmlinux_syms);
    addresses(out, &expected, &vmlinux_syms);
}

/// `format`: every line of `text` parses; returns the vmlinux symbols.
fn format<'t, W: Write>(out: &mut CaseWriter<W>, text: &'t str) -> Vec<Sym<'t>> {
    let mut bad = Vec::new();
    let mut vmlinux_syms = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_proc_line(line) {
            Ok((sym, false)) => vmlinux_syms.push(sym),
            Ok((_, true)) => {}
            Err(why) => bad.push(format!("line {}: {why}: {line:?}", i + 1)),
        }
    }
    let all_zero = !vmlinux_syms.is_empty() && vmlinux_syms.iter().all(|s| s.addr == 0);
    let mut diag = Vec::new();
    if !bad.is_empty() {
        diag.extend(summarize("malformed lines", &bad));
    }
    if all_zero {
        diag.push("every address is 0: kallsyms values are hidden (kptr_restrict?)".into());
    }
    if vmlinux_syms.is_empty() {
        diag.push("no vmlinux symbols listed".into());
    }
    let n_bad = bad.len() + all_zero as usize;
    out.counted(
        "format",
        text.lines().count(),
        n_bad,
        diag,
        "/proc/kallsyms is empty",
    );
    vmlinux_syms
}

/// `names-and-types`: the listed vmlinux symbols are the expected ones
/// (as multisets of type and name).
fn names_and_types<W: Write>(out: &mut CaseWriter<W>, expected: &[Sym], vmlinux_syms: &[Sym]) {
    let exp_nt: Vec<(char, &str)> = expected.iter().map(|s| (s.ty, s.name)).collect();
    let act_nt: Vec<(char, &str)> = vmlinux_syms.iter().map(|s| (s.ty, s.name)).collect();
    let (missing, extra) = multiset_diff(&exp_nt, &act_nt);
    let show_nt = |v: Vec<(char, &str)>| {
        let mut v: Vec<String> = v.iter().map(|(t, n)| format!("{t} {n}")).collect();
        v.sort();
        v
    };
    let (missing, extra) = (show_nt(missing), show_nt(extra));
    let mut d = Vec::new();
    if !missing.is_empty() || !extra.is_empty() {
        d.push(format!(
            "expected {} symbols, /proc/kallsyms lists {}",
            expected.len(),
            vmlinux_syms.len()
        ));
        d.extend(summarize("expected but not listed (type name)", &missing));
        d.extend(summarize("listed but not expected (type name)", &extra));
    }
    out.counted(
        "names-and-types",
        expected.len(),
        missing.len() + extra.len(),
        d,
        &format!("{} is empty", ksh_proto::files::FileId::Kallsyms.path()),
    );
}

/// `addresses`: the listed symbols are at the expected addresses moved
/// by the KASLR offset (from `_text`), and that offset is the one sources
/// independent of kallsyms give.
fn addresses<W: Write>(out: &mut CaseWriter<W>, expected: &[Sym], vmlinux_syms: &[Sym]) {
    // KASLR moves the whole image; `_text` tells by how much.
    let find = |v: &[Sym]| v.iter().find(|s| s.name == "_text").map(|s| s.addr);
    let (Some(exp_text), Some(act_text)) = (find(expected), find(vmlinux_syms)) else {
        out.case(
            "addresses",
            Verdict::Fail(vec![
                "_text is missing from the expectations or /proc/kallsyms".into(),
            ]),
        );
        return;
    };
    let offset = act_text.wrapping_sub(exp_text);
    let relocated: Vec<Sym<'_>> = vmlinux_syms
        .iter()
        .map(|s| Sym {
            addr: s.addr.wrapping_sub(offset),
            ..*s
        })
        .collect();
    let (mut missing, mut extra) = multiset_diff(expected, &relocated);
    missing.sort_by_key(|s| s.addr);
    extra.sort_by_key(|s| s.addr);
    let show = |v: &[Sym<'_>]| {
        v.iter()
            .map(|s| format!("{:016x} {} {}", s.addr, s.ty, s.name))
            .collect::<Vec<_>>()
    };
    // The offset itself, against an anchor independent of kallsyms.
    let anchor = crate::kaslr::check_offset(offset);
    let mut d = Vec::new();
    match &anchor {
        Ok(note) => println!("# anchor: {note}"),
        Err(e) => d.push(e.clone()),
    }
    if !missing.is_empty() || !extra.is_empty() {
        d.push(format!("KASLR offset {offset:#x} (from _text)"));
        d.extend(summarize(
            "expected (vmlinux address) but not found",
            &show(&missing),
        ));
        d.extend(summarize(
            "listed (minus offset) but not expected",
            &show(&extra),
        ));
    }
    out.counted(
        "addresses",
        expected.len() + 1,
        missing.len() + extra.len() + anchor.is_err() as usize,
        d,
        "",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_format() {
        let (s, m) = parse_proc_line("ffffffff81000000 T _text").unwrap();
        assert_eq!(
            (s.addr, s.ty, s.name, m),
            (0xffffffff81000000, 'T', "_text", false)
        );
        let (_, m) =
            parse_proc_line("ffffffffc0000000 t ftrace_trampoline\t[__builtin__ftrace]").unwrap();
        assert!(m);
        assert!(parse_proc_line("ffffffff81000000 T").is_err());
        assert!(parse_proc_line("FFFFFFFF81000000 T x").is_err());
        assert!(parse_proc_line("ffffffff8100000 T x").is_err());
        assert!(parse_proc_line("ffffffff81000000 TT x").is_err());
        assert!(parse_proc_line("ffffffff81000000 ? __nosave_begin").is_ok());
        assert!(parse_proc_line("ffffffff81000000 * x").is_err());
        assert!(parse_proc_line("ffffffff81000000 T x\tmod").is_err());
    }

    #[test]
    fn multiset_diff_counts_duplicates() {
        let (m, e) = multiset_diff(&["a", "a", "b"], &["a", "b", "c"]);
        assert_eq!(m, ["a"]);
        assert_eq!(e, ["c"]);
        let (m, e) = multiset_diff(&["b", "a"], &["a", "b"]);
        assert!(m.is_empty() && e.is_empty(), "order does not matter");
        let (m, e) = multiset_diff(&["a", "b"], &["a", "b"]);
        assert!(m.is_empty() && e.is_empty());
    }
}
