//! `vmcoreinfo`: the size tables in VMCOREINFO (patch 0010), as a dump
//! reader finds them. On a live system drgn reads VMCOREINFO from the ELF
//! notes of `/proc/kcore`; so does this probe, and it checks each
//! `SYMBOL(kallsyms_size_*)=ADDR` against the symbol's vmlinux address
//! (plus the KASLR offset) and `NUMBER(KALLSYMS_SIZE_FORMAT)=1`.
//! `SYMBOL(kallsyms_names)`, in VMCOREINFO on every kernel, is checked the
//! same way first: the witness that the note was found and read. Without
//! it, or without `/proc/kcore` or the expectations, the case fails as a
//! setup error (no count line), never as "N of M mismatched".

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use crate::ktap::CaseWriter;
use crate::{expect, kaslr, probe_module};

/// The tables of the size encoding (kernel/kallsyms_internal.h).
pub const SIZE_TABLES: &[&str] = &[
    "kallsyms_size_codes",
    "kallsyms_size_gaps",
    "kallsyms_size_rank",
    "kallsyms_size_exc",
];

/// In VMCOREINFO with or without the series.
const WITNESS: &str = "kallsyms_names";

/// `NUMBER(KALLSYMS_SIZE_FORMAT)`: the layout the kernel decodes.
const FORMAT_KEY: &str = "NUMBER(KALLSYMS_SIZE_FORMAT)";
const FORMAT: &str = "1";

const PT_NOTE: u32 = 4;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The VMCOREINFO text of an ELF64 little-endian core file (both arches).
fn read_vmcoreinfo(f: &File) -> Result<String, String> {
    let mut eh = [0u8; 64];
    f.read_exact_at(&mut eh, 0)
        .map_err(|e| format!("ELF header: {e}"))?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let (phoff, phentsize, phnum) = (u64_at(&eh, 32), u16_at(&eh, 54), u16_at(&eh, 56));
    if phentsize < 56 {
        return Err(format!("program header size {phentsize}"));
    }
    let mut ph = vec![0u8; phentsize as usize * phnum as usize];
    f.read_exact_at(&mut ph, phoff)
        .map_err(|e| format!("program headers: {e}"))?;
    for h in ph.chunks(phentsize as usize) {
        if u32_at(h, 0) != PT_NOTE {
            continue;
        }
        let (off, size) = (u64_at(h, 8), u64_at(h, 32));
        let mut notes = vec![0u8; size as usize];
        f.read_exact_at(&mut notes, off)
            .map_err(|e| format!("PT_NOTE segment: {e}"))?;
        return find_note(&notes, b"VMCOREINFO")
            .map(|d| {
                String::from_utf8_lossy(d)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .ok_or_else(|| "no VMCOREINFO note in the PT_NOTE segment".into());
    }
    Err("no PT_NOTE program header".into())
}

/// The descriptor of the note named `name` in an ELF note segment.
fn find_note<'a>(mut notes: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let align = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let (namesz, descsz) = (u32_at(notes, 0) as usize, u32_at(notes, 4) as usize);
        let name_at = 12;
        let desc_at = name_at + align(namesz);
        let end = desc_at + align(descsz);
        if desc_at + descsz > notes.len() {
            return None;
        }
        let this = &notes[name_at..name_at + namesz];
        if this.strip_suffix(b"\0").unwrap_or(this) == name {
            return Some(&notes[desc_at..desc_at + descsz]);
        }
        notes = notes.get(end..)?;
    }
    None
}

/// The value of `KEY=VALUE` in the VMCOREINFO text.
fn value<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    // Everything that is not a VMCOREINFO entry of the size tables (the
    // note, the expectations, the KASLR offset, the witness) is setup: a
    // failure there fails the case without a count, so it can never pass
    // for the baseline's "N of M mismatched".
    let setup = || -> Result<(String, Vec<Option<u64>>), String> {
        let info = File::open("/proc/kcore")
            .map_err(|e| format!("/proc/kcore: {e}"))
            .and_then(|f| read_vmcoreinfo(&f).map_err(|e| format!("/proc/kcore: {e}")))?;
        let offset = kaslr::kaslr_offset()?;
        let names: Vec<&str> = std::iter::once(WITNESS)
            .chain(SIZE_TABLES.iter().copied())
            .collect();
        // One pass over the expected table for all names (the tables sit
        // near its end: a pass per name cost 5 full parses).
        // The tables are absent from an unpatched kernel's expectations
        // (its VMCOREINFO must then lack them: counted, not setup).
        let want: Vec<Option<u64>> = expect::expected_addresses_if_any(&names)?
            .into_iter()
            .map(|a| a.map(|a| a.wrapping_add(offset)))
            .collect();
        let key = format!("SYMBOL({WITNESS})");
        let witness = want[0].ok_or_else(|| {
            format!(
                "{WITNESS} is not in {}",
                ksh_proto::files::FileId::Kallsyms.path()
            )
        })?;
        match value(&info, &key).map(probe_module::hex) {
            Some(Ok(got)) if got == witness => Ok((info, want[1..].to_vec())),
            Some(Ok(got)) => Err(format!(
                "the witness {key}={got:x}, the symbol is at {witness:x}: the note was not read right"
            )),
            Some(Err(e)) => Err(format!("the witness {key}: {e}")),
            None => Err(format!(
                "no witness {key}= line: the VMCOREINFO note was not found or not read right"
            )),
        }
    };
    let (info, want) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&format!("setup: {e}")),
    };
    out.note(&format!("VMCOREINFO: {} lines", info.lines().count()));
    let mut bad = Vec::new();
    for (name, want) in SIZE_TABLES.iter().zip(want) {
        let key = format!("SYMBOL({name})");
        let Some(got) = value(&info, &key) else {
            bad.push(format!("no {key}= line"));
            continue;
        };
        match (probe_module::hex(got), want) {
            (Ok(g), Some(w)) if g == w => {}
            (Ok(g), Some(w)) => bad.push(format!("{key}={g:x}, the symbol is at {w:x}")),
            (Ok(g), None) => bad.push(format!("{key}={g:x}, but the kernel has no {name} symbol")),
            (Err(e), _) => bad.push(format!("{key}: {e}")),
        }
    }
    match value(&info, FORMAT_KEY) {
        Some(FORMAT) => {}
        Some(v) => bad.push(format!(
            "{FORMAT_KEY}={v}, the kernel decodes format {FORMAT}"
        )),
        None => bad.push(format!("no {FORMAT_KEY}= line")),
    }
    out.checked_items(
        "size-tables",
        SIZE_TABLES.len() + 1,
        "VMCOREINFO entries missing or wrong",
        &bad,
        "",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((name.len() as u32).to_le_bytes());
        v.extend((desc.len() as u32).to_le_bytes());
        v.extend(ty.to_le_bytes());
        v.extend(name);
        v.resize((v.len() + 3) & !3, 0);
        v.extend(desc);
        v.resize((v.len() + 3) & !3, 0);
        v
    }

    #[test]
    fn finds_the_vmcoreinfo_note_among_others() {
        let mut seg = note(b"CORE\0", 1, &[7; 336]);
        seg.extend(note(b"VMCOREINFO\0", 0, b"SYMBOL(x)=ff\nNUMBER(Y)=1\n"));
        let d = find_note(&seg, b"VMCOREINFO").unwrap();
        let text = std::str::from_utf8(d).unwrap();
        assert_eq!(value(text, "SYMBOL(x)"), Some("ff"));
        assert_eq!(value(text, "NUMBER(Y)"), Some("1"));
        assert_eq!(value(text, "SYMBOL(z)"), None);
        assert!(find_note(&seg, b"OTHER").is_none());
        assert!(find_note(&seg[..20], b"VMCOREINFO").is_none(), "truncated");
    }
}
