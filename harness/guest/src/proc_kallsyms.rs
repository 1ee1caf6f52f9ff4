//! `/proc/kallsyms` as the probes read it: the boot's one snapshot, and
//! the one parser of its lines (`parse_proc_line`, strict:
//! `proc-kallsyms` reports what it rejects, the other probes skip it).

use std::io::Read;

/// One `/proc/kallsyms` line: address, type, name, module (without brackets).
pub struct ProcSym {
    pub addr: u64,
    pub ty: char,
    pub name: String,
    pub module: Option<String>,
}

/// Where the `proc-kallsyms` probe leaves the text it read, so later probes
/// of the same boot parse a copy instead of making the kernel format all
/// symbols again (about a second under TCG each time).
pub const PROC_KALLSYMS_SNAPSHOT: &str = "/tmp/proc-kallsyms.txt";

/// Leaves `text` (all of `/proc/kallsyms`) for later probes. Written under
/// another name and renamed: probes run concurrently, and a reader must see
/// the whole file or none.
pub fn save_proc_kallsyms_snapshot(text: &str) {
    let tmp = format!("{PROC_KALLSYMS_SNAPSHOT}.{}", std::process::id());
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, PROC_KALLSYMS_SNAPSHOT);
    }
}

/// `/proc/kallsyms` of this boot: the snapshot if there is one, else read now.
pub fn proc_kallsyms_text() -> Result<String, String> {
    if let Ok(t) = std::fs::read_to_string(PROC_KALLSYMS_SNAPSHOT) {
        return Ok(t);
    }
    read_proc_kallsyms()
}

/// Reads the live `/proc/kallsyms` in 1 MiB reads: seq_file fills as much
/// of each read as it can, so a large buffer means few round trips into
/// the kernel (std's reads start small and grow).
pub fn read_proc_kallsyms() -> Result<String, String> {
    let mut f =
        std::fs::File::open("/proc/kallsyms").map_err(|e| format!("/proc/kallsyms: {e}"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut chunk)
            .map_err(|e| format!("reading /proc/kallsyms: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).map_err(|e| format!("/proc/kallsyms is not UTF-8: {e}"))
}

/// One `/proc/kallsyms` line, borrowed from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcLine<'a> {
    pub addr: u64,
    pub ty: char,
    pub name: &'a str,
    /// The owner after the tab, without brackets (a module, or `bpf`,
    /// `__builtin__ftrace` and the like).
    pub module: Option<&'a str>,
}

/// Parses one `/proc/kallsyms` line in its documented format, strictly:
/// `ADDR TYPE NAME` or `ADDR TYPE NAME\t[MODULE]`, ADDR 16 lowercase hex
/// digits, TYPE one letter or `?` (nm's "unknown", e.g. `__nosave_begin`
/// on x86_64), NAME non-empty without spaces. The one parser of the guest:
/// `proc-kallsyms` reports what it rejects, the other probes skip it.
pub fn parse_proc_line(line: &str) -> Result<ProcLine<'_>, String> {
    let Some((addr, rest)) = line.split_once(' ') else {
        return Err("fewer than three fields".into());
    };
    if addr.len() != 16
        || !addr
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("address is not 16 lowercase hex digits".into());
    }
    let mut p = parse_proc_line_rest(rest)?;
    p.addr = u64::from_str_radix(addr, 16).map_err(|e| e.to_string())?;
    Ok(p)
}

/// [`parse_proc_line`] after the address: `TYPE NAME[\t[MODULE]]`, with
/// `addr` 0 (`/proc/kallsyms_sizes` has a size field in between).
pub fn parse_proc_line_rest(rest: &str) -> Result<ProcLine<'_>, String> {
    let Some((ty, rest)) = rest.split_once(' ') else {
        return Err("fewer than three fields".into());
    };
    let (name, module) = split_owner(rest)?;
    if ty.len() != 1 || !(ty.as_bytes()[0].is_ascii_alphabetic() || ty == "?") {
        return Err("type is not one letter or '?'".into());
    }
    if name.is_empty() || name.contains(' ') {
        return Err("empty name or name with a space".into());
    }
    Ok(ProcLine {
        addr: 0,
        ty: ty.chars().next().unwrap(),
        name,
        module,
    })
}

/// `NAME` or `NAME\t[MODULE]`.
fn split_owner(rest: &str) -> Result<(&str, Option<&str>), String> {
    match rest.split_once('\t') {
        Some((n, m)) => match m.strip_prefix('[').and_then(|m| m.strip_suffix(']')) {
            Some(m) if !m.is_empty() => Ok((n, Some(m))),
            _ => Err("text after the tab is not [module]".into()),
        },
        None => Ok((rest, None)),
    }
}

/// The `/proc/kallsyms` entries that `keep(name, module)` accepts. Most
/// probes want a few symbols out of tens of thousands: the name and owner
/// are looked at first, the rest of the line only for the kept ones.
/// Malformed lines are skipped (the `proc-kallsyms` probe reports them).
pub fn proc_kallsyms_where(
    keep: impl Fn(&str, Option<&str>) -> bool,
) -> Result<Vec<ProcSym>, String> {
    let text = proc_kallsyms_text()?;
    let mut out = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.splitn(3, ' ').nth(2) else {
            continue;
        };
        let Ok((name, module)) = split_owner(rest) else {
            continue;
        };
        if !keep(name, module) {
            continue;
        }
        let Ok(p) = parse_proc_line(l) else {
            continue;
        };
        out.push(ProcSym {
            addr: p.addr,
            ty: p.ty,
            name: p.name.to_string(),
            module: p.module.map(str::to_string),
        });
    }
    Ok(out)
}
