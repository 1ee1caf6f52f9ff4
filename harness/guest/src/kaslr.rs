//! The KASLR offset: runtime minus link-time address, from `_text` in
//! `/proc/kallsyms` and the expected table, checked against sources
//! independent of kallsyms (the build's `CONFIG_RANDOMIZE_BASE`, the probe
//! module's anchor).

use std::io::{BufRead, BufReader};

use crate::expect::{build_info, expected_addresses};
use crate::probe_module::hex;
use crate::proc_kallsyms::parse_proc_line;

/// Runtime minus link-time address, from `_text` in `/proc/kallsyms` and in
/// the expected table.
pub fn kaslr_offset() -> Result<u64, String> {
    // The first `_text` line of each: the live file (stops reading there)
    // and the expected table.
    let proc_text = || -> Result<u64, String> {
        let f =
            std::fs::File::open("/proc/kallsyms").map_err(|e| format!("/proc/kallsyms: {e}"))?;
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                parse_proc_line(&l)
                    .ok()
                    .filter(|p| p.name == "_text")
                    .map(|p| p.addr)
            })
            .ok_or_else(|| "/proc/kallsyms has no _text".to_string())
    };
    let runtime = proc_text()?;
    let linked = expected_addresses(&["_text"])?[0];
    let off = runtime.wrapping_sub(linked);
    check_offset(off)?;
    Ok(off)
}

/// Runtime minus link-time address of [`ksh_proto::ANCHOR_SYMBOL`] as the
/// probe module saw it (the module loader resolved it through the export
/// table, not kallsyms). None when the module does not print it.
pub fn anchor_offset() -> Result<Option<u64>, String> {
    let info = build_info();
    let link = info.get(ksh_proto::ANCHOR_LINK_KEY).ok_or_else(|| {
        format!(
            "{} has no {}= line",
            ksh_proto::files::FileId::BuildInfo.path(),
            ksh_proto::ANCHOR_LINK_KEY
        )
    })?;
    let link = hex(link)?;
    let path = format!("{}/features", ksh_proto::MODULE_DEBUGFS);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let key = format!("{}=", ksh_proto::ANCHOR_FEATURE_KEY);
    match text.lines().find_map(|l| l.strip_prefix(key.as_str())) {
        Some(v) => Ok(Some(hex(v.trim())?.wrapping_sub(link))),
        None => Ok(None),
    }
}

/// Checks the offset `/proc/kallsyms` implies (from `_text`) against
/// sources independent of kallsyms: it must be 0 on a kernel built without
/// CONFIG_RANDOMIZE_BASE, and equal to [`anchor_offset`] when the module
/// reports its anchor. A uniform shift of every kallsyms address would
/// otherwise pass every probe. Returns a note on what was compared.
pub fn check_offset(off: u64) -> Result<String, String> {
    let kaslr = build_info().get("randomize_base") == Some("1");
    if !kaslr && off != 0 {
        return Err(format!(
            "/proc/kallsyms is shifted by {off:#x} from vmlinux (_text), but the kernel has no CONFIG_RANDOMIZE_BASE: want offset 0"
        ));
    }
    match anchor_offset()? {
        Some(a) if a != off => Err(format!(
            "/proc/kallsyms implies offset {off:#x} (_text), but {} as the module loader resolved it implies {a:#x}",
            ksh_proto::ANCHOR_SYMBOL
        )),
        Some(a) => Ok(format!(
            "offset {off:#x} (_text) equals the {} anchor's {a:#x}{}",
            ksh_proto::ANCHOR_SYMBOL,
            if kaslr { "" } else { " (no KASLR: 0)" }
        )),
        // The module always prints it: its absence is a broken module.
        None => Err(format!(
            "offset {off:#x} (_text) cannot be cross-checked: the probe module prints no {}= line",
            ksh_proto::ANCHOR_FEATURE_KEY
        )),
    }
}
