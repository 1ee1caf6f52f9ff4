//! `kallsyms-sizes-file`: `/proc/kallsyms_sizes` (patch 0011), the file
//! that gives tools (perf, bpftrace, drgn) the symbol sizes while
//! `/proc/kallsyms` keeps its format. Each line is a `/proc/kallsyms` line
//! with the size inserted after the address, as `nm -S` prints it:
//! `ADDR SIZE TYPE NAME[\t[MODULE]]`, SIZE 16 lowercase hex digits.
//!
//! Checked against the host's ground truth: the same symbols as
//! `/proc/kallsyms` in the same order, every sized vmlinux symbol with its
//! ELF size, the probe module's functions with theirs, and an unprivileged
//! reader sees the sizes but no addresses (the `kallsyms_show_value()`
//! rule of `/proc/kallsyms`). A kernel without the file (ENOENT) fails
//! every case with every item counted as missing; a setup error (the
//! expectations, the KASLR offset, dropping privileges) or another read
//! error fails without a count, so it can never pass for a mismatch.

use rustc_hash::FxHashMap as HashMap;
use std::io::Write;
use std::time::Instant;

use crate::ktap::CaseWriter;
use crate::{expect, kaslr, proc_kallsyms};

const PATH: &str = ksh_proto::PROC_KALLSYMS_SIZES;

/// Width of the address and size fields (16 hex digits and a space).
const FIELD: usize = 17;

/// One line of the file: the size, and the line (which without its size
/// field, [`without_size`], is a `/proc/kallsyms` line).
struct SizedLine<'a> {
    size: u64,
    line: &'a str,
}

/// `line` is `ADDR SIZE REST` and `reference` is `ADDR REST`. Compared in
/// place: building the line without its size costs an allocation per
/// symbol, which shows under TCG.
fn without_size(line: &str, reference: &str) -> bool {
    line.len() == reference.len() + FIELD
        && line[..FIELD] == reference[..FIELD]
        && line[2 * FIELD..] == reference[FIELD..]
}

/// The size field of `ADDR SIZE REST`, checked strictly (16 lowercase hex
/// digits between single spaces).
fn size_field(line: &str) -> Result<u64, String> {
    let b = line.as_bytes();
    if b.len() < 2 * FIELD + 2 || b[FIELD - 1] != b' ' || b[2 * FIELD - 1] != b' ' {
        return Err("not ADDR SIZE TYPE NAME with 16-digit ADDR and SIZE".into());
    }
    let size = &line[FIELD..2 * FIELD - 1];
    if !size
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err("size is not 16 lowercase hex digits".into());
    }
    u64::from_str_radix(size, 16).map_err(|e| e.to_string())
}

/// Parses `ADDR SIZE REST` as the `/proc/kallsyms` line `ADDR REST` would
/// be (the guest's one parser), without building that line: the address
/// is checked here, the rest by the parser given a zero address's text.
fn parse_sized(line: &str) -> Option<proc_kallsyms::ProcLine<'_>> {
    let addr = &line[..FIELD - 1];
    if !addr
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    let rest = &line[2 * FIELD..];
    let mut p = proc_kallsyms::parse_proc_line_rest(rest).ok()?;
    p.addr = u64::from_str_radix(addr, 16).ok()?;
    Some(p)
}

/// Lines of tables that change while probes run (kprobe instruction
/// pages, BPF programs, ftrace trampolines) and have no size in kallsyms:
/// left out of the comparisons.
fn is_volatile(owner: Option<&str>) -> bool {
    matches!(owner, Some(o) if o == "bpf" || o.starts_with("__builtin__"))
}

fn owner_of(line: &str) -> Option<&str> {
    line.rsplit_once('\t')
        .map(|(_, m)| m.trim_matches(|c| c == '[' || c == ']'))
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let reference = match proc_kallsyms::proc_kallsyms_text() {
        Ok(t) => t,
        Err(e) => return out.fail_rest(&format!("cannot read /proc/kallsyms: {e}")),
    };
    let reference: Vec<&str> = reference
        .lines()
        .filter(|l| !is_volatile(owner_of(l)))
        .collect();

    // Setup (the expectations, the KASLR offset, dropping privileges)
    // fails a case without a count: only what the kernel shows is counted,
    // so a broken setup can never pass for the baseline's mismatches.
    let sizes_text = match expect::expect_text(ksh_proto::files::FileId::Sizes.path()) {
        Ok(t) => t,
        Err(e) => return out.fail_rest(&format!("setup: {e}")),
    };
    let setup = || -> Result<_, String> {
        Ok((
            sized_vmlinux_symbols(&sizes_text)?,
            expect::module_syms()?,
            kaslr::kaslr_offset()?,
        ))
    };
    let (expected, module_fns, offset) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&format!("setup: {e}")),
    };

    let started = Instant::now();
    let text = match std::fs::read(PATH) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A kernel without the file: every item of every case is
            // missing, counted, as a kernel without sizes should fail.
            let why = format!("{PATH}: {e}");
            for (case, n) in [
                ("lines", reference.len()),
                ("vmlinux-sizes", expected.len()),
                ("module-sizes", module_fns.len()),
                ("unprivileged", reference.len()),
            ] {
                out.counted(case, n.max(1), n.max(1), vec![why.clone()], "");
            }
            return;
        }
        Err(e) => return out.fail_rest(&format!("reading {PATH} as root: {e}")),
    };
    let read_ms = started.elapsed().as_millis();
    let mut bad_lines = Vec::new();
    let mut lines: Vec<SizedLine> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if is_volatile(owner_of(l)) {
            continue;
        }
        match size_field(l) {
            Ok(size) => lines.push(SizedLine { size, line: l }),
            Err(why) => bad_lines.push(format!("line {}: {why}: {l:?}", i + 1)),
        }
    }
    out.note(&format!(
        "{PATH}: {} lines ({} bytes) read in {read_ms} ms",
        text.lines().count(),
        text.len()
    ));
    let parsed: Vec<(u64, proc_kallsyms::ProcLine)> = lines
        .iter()
        .filter_map(|l| parse_sized(l.line).map(|p| (l.size, p)))
        .collect();
    let read = Read {
        reference,
        lines,
        malformed: bad_lines,
        parsed,
        expected,
        module_fns,
        offset,
    };
    // The registry's cases, in its order.
    let cases: [fn(&mut CaseWriter<W>, &Read); 4] =
        [lines_case, vmlinux_sizes, module_sizes, unprivileged];
    for case in cases {
        case(out, &read);
    }
}

/// What was read: `/proc/kallsyms` (the reference) and the file, as lines
/// and parsed, both without their volatile lines; and what is expected.
struct Read<'a> {
    reference: Vec<&'a str>,
    lines: Vec<SizedLine<'a>>,
    /// Lines without a size field.
    malformed: Vec<String>,
    /// (size, line) of each line that parses.
    parsed: Vec<(u64, proc_kallsyms::ProcLine<'a>)>,
    /// (link-time address, name, ELF size) of every sized vmlinux symbol.
    expected: Vec<(u64, &'a str, u64)>,
    /// (name, ELF size) of the probe module's functions.
    module_fns: Vec<(String, u64)>,
    /// The KASLR offset.
    offset: u64,
}

/// `lines`: the /proc/kallsyms lines, in order, with a size inserted.
fn lines_case<W: Write>(out: &mut CaseWriter<W>, read: &Read) {
    let (reference, lines) = (&read.reference, &read.lines);
    let mut bad = read.malformed.clone();
    let n = reference.len().max(lines.len());
    for i in 0..n {
        match (reference.get(i), lines.get(i)) {
            (Some(r), Some(s)) if without_size(s.line, r) => {}
            (r, s) => bad.push(format!(
                "line {}: /proc/kallsyms {:?}, {PATH} {:?}",
                i + 1,
                r.copied().unwrap_or("(none)"),
                s.map(|s| s.line).unwrap_or("(none)")
            )),
        }
    }
    out.checked_items(
        "lines",
        reference.len(),
        "lines that differ from /proc/kallsyms (size left out)",
        &bad,
        "/proc/kallsyms is empty",
    );
}

/// `vmlinux-sizes`: every sized vmlinux symbol with its ELF size.
fn vmlinux_sizes<W: Write>(out: &mut CaseWriter<W>, read: &Read) {
    let (expected, offset) = (&read.expected, read.offset);
    let listed: HashMap<(u64, &str), u64> = read
        .parsed
        .iter()
        .filter(|(_, p)| p.module.is_none())
        .map(|(s, p)| ((p.addr.wrapping_sub(offset), p.name), *s))
        .collect();
    let mut bad = Vec::new();
    for (addr, name, size) in expected.iter() {
        match listed.get(&(*addr, *name)) {
            Some(s) if s == size => {}
            Some(s) => bad.push(format!(
                "{name} ({addr:#x}): size {s:#x}, ELF size {size:#x}"
            )),
            None => bad.push(format!("{name} ({addr:#x}): not listed")),
        }
    }
    out.checked_items(
        "vmlinux-sizes",
        expected.len(),
        "sized vmlinux symbols without their ELF size",
        &bad,
        &format!(
            "{} lists no sized symbol",
            ksh_proto::files::FileId::Sizes.path()
        ),
    );
}

/// `module-sizes`: the probe module's functions with their ELF sizes.
fn module_sizes<W: Write>(out: &mut CaseWriter<W>, read: &Read) {
    let module_fns = &read.module_fns;
    let listed: HashMap<&str, u64> = read
        .parsed
        .iter()
        .filter(|(_, p)| p.module == Some(ksh_proto::MODULE_NAME))
        .map(|(s, p)| (p.name, *s))
        .collect();
    let bad: Vec<String> = module_fns
        .iter()
        .filter_map(|(name, size)| match listed.get(name.as_str()) {
            Some(s) if s == size => None,
            Some(s) => Some(format!("{name}: size {s:#x}, ELF size {size:#x}")),
            None => Some(format!(
                "{name}: not listed as [{}]",
                ksh_proto::MODULE_NAME
            )),
        })
        .collect();
    out.checked_items(
        "module-sizes",
        module_fns.len(),
        "module functions without their ELF size",
        &bad,
        &format!("{} is empty", ksh_proto::files::FileId::ModuleSyms.path()),
    );
}

/// `unprivileged`: the same lines with every address zero, sizes kept.
fn unprivileged<W: Write>(out: &mut CaseWriter<W>, read: &Read) {
    let lines = &read.lines;
    let started = Instant::now();
    match crate::sys::read_unprivileged(PATH) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let theirs: Vec<&str> = text.lines().filter(|l| !is_volatile(owner_of(l))).collect();
            let zero = "0".repeat(FIELD - 1);
            let mut bad = Vec::new();
            let mut sizes_shown = 0usize;
            for i in 0..lines.len().max(theirs.len()) {
                let (Some(ours), Some(t)) = (lines.get(i), theirs.get(i)) else {
                    bad.push(format!("line {}: only one of the two reads has it", i + 1));
                    continue;
                };
                // Our line with the address zeroed, compared in place.
                let same = t.len() == ours.line.len()
                    && t[..FIELD - 1] == zero[..]
                    && t[FIELD - 1..] == ours.line[FIELD - 1..];
                if !same {
                    bad.push(format!(
                        "line {}: root read {:?}, uid {} read {t:?} (want the address zeroed, the rest equal)",
                        i + 1,
                        ours.line,
                        crate::sys::NOBODY
                    ));
                }
                sizes_shown += (ours.size != 0) as usize;
            }
            if sizes_shown == 0 {
                bad.push(
                    "no line has a size: nothing shows that sizes reach the unprivileged".into(),
                );
            }
            out.note(&format!(
                "{PATH} as uid {}: {} lines in {} ms",
                crate::sys::NOBODY,
                theirs.len(),
                started.elapsed().as_millis()
            ));
            out.checked_items(
                "unprivileged",
                lines.len(),
                "lines an unprivileged reader sees with an address or without the size",
                &bad,
                &format!("{PATH} is empty"),
            );
        }
        // The kernel refused the reader: every line is unseen, counted.
        Err(crate::sys::UnprivilegedReadError::Refused(e)) => out.counted(
            "unprivileged",
            lines.len().max(1),
            lines.len().max(1),
            vec![e],
            "",
        ),
        Err(crate::sys::UnprivilegedReadError::Setup(e)) => out.case(
            "unprivileged",
            crate::ktap::Verdict::Fail(vec![format!("setup: {e}")]),
        ),
    }
}

/// (link-time address, name, ELF size) of every sized vmlinux symbol the
/// host expects in kallsyms: the sized lines of `sizes.txt` (its `text`),
/// each read with the contract's own line parser (grouping the whole file,
/// as the lookup probes do, costs several hundred ms under TCG and is not
/// needed here). Names are borrowed from `text`: one allocation per
/// symbol showed under TCG.
fn sized_vmlinux_symbols(text: &str) -> Result<Vec<(u64, &str, u64)>, String> {
    use ksh_proto::files::{Line, SizesLine};
    let mut out = Vec::with_capacity(text.len() / 40);
    for (i, l) in text.lines().enumerate() {
        let s = SizesLine::parse(l).map_err(|e| {
            format!(
                "{} line {}: {e}",
                ksh_proto::files::FileId::Sizes.path(),
                i + 1
            )
        })?;
        if let Some((size, _)) = s.sized {
            out.push((s.addr, s.name, size));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_size_field() {
        let l = "ffffffff81000000 0000000000000123 T _stext";
        assert_eq!(size_field(l), Ok(0x123));
        assert!(without_size(l, "ffffffff81000000 T _stext"));
        assert!(!without_size(l, "ffffffff81000000 T _stext2"));
        let p = parse_sized(l).unwrap();
        assert_eq!(
            (p.addr, p.ty, p.name, p.module),
            (0xffffffff81000000, 'T', "_stext", None)
        );
        let l = "ffffffffc0002000 0000000000000040 t foo_init\t[foo]";
        assert_eq!(size_field(l), Ok(0x40));
        assert!(without_size(l, "ffffffffc0002000 t foo_init\t[foo]"));
        assert_eq!(parse_sized(l).unwrap().module, Some("foo"));
        assert!(size_field("ffffffff81000000 T _stext").is_err());
        assert!(size_field("ffffffff81000000 123 T _stext").is_err());
        assert!(size_field("ffffffff81000000 000000000000012G T _stext").is_err());
        assert!(size_field("ffffffff81000000 00000000000001AB T _stext").is_err());
    }

    #[test]
    fn volatile_owners() {
        assert!(is_volatile(owner_of(
            "0 t kprobe_insn_page\t[__builtin__kprobes]"
        )));
        assert!(is_volatile(owner_of("0 t bpf_prog_x\t[bpf]")));
        assert!(!is_volatile(owner_of("0 t f\t[ksh_probe]")));
        assert!(!is_volatile(owner_of("0 T _text")));
    }
}
