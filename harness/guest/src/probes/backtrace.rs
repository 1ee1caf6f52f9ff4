//! `backtrace`: stack traces name the function a return address returns
//! into, also when the call was the function's last instruction (a call
//! to a noreturn function), where the return address is exactly the
//! function's end and a size-aware lookup of it finds no symbol.
//!
//! The probe module's `backtrace` file runs its fixture (the kthread
//! function `ksh_bt_caller()`, see harness/probe-module) and answers one
//! line per saved entry, `ADDR\t%pB\t%pBb`; the fixture also prints the
//! trace with `stack_trace_print()` and `dump_stack()` between marker
//! lines, which this probe reads back from `/dev/kmsg`.
//! - `end-of-function-frame`: one entry is `ksh_bt_caller`'s end (from its
//!   ELF size), and `%pB`/`%pBb` print it as `ksh_bt_caller+SIZE/...`;
//! - `stack-trace-print`: every line `stack_trace_print()` printed is
//!   `name+off/size`, the one for that entry names `ksh_bt_caller`, and
//!   the frames in the module name the module function containing the call;
//! - `dump-stack`: `dump_stack()`'s trace has a `ksh_bt_caller+SIZE/...`
//!   frame and no frame printed as a bare address; on x86_64, whose
//!   `dump_stack()` also prints text addresses found on the stack as
//!   unreliable `? ` entries, the fixture's pointer to `ksh_bt_after()`
//!   (a function after padding) is printed named: `? ksh_bt_after+0x0/...`
//!   (a size-blind kernel names the function before the padding, as `%pB`
//!   always has), never as a bare address.
//!
//! Names and offsets are checked, not the `/size` part: sizes are the
//! `sizes` and `format-pS` probes' business.

use std::io::{Read, Write};

use crate::ktap::{CaseWriter, Verdict};
use crate::probe_module::hex;
use crate::{expect, probe_module, proc_kallsyms};

/// Messages of `/dev/kmsg` (the text after `;` of each record).
fn kmsg() -> Result<Vec<String>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| format!("/dev/kmsg: {e}"))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                let first = rec.lines().next().unwrap_or("");
                if let Some((_, msg)) = first.split_once(';') {
                    out.push(msg.to_string());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // A record overwritten while reading: go on with the next.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(format!("reading /dev/kmsg: {e}")),
        }
    }
    Ok(out)
}

/// The messages between `ksh_probe: WHAT begin` and `... end`.
fn block<'a>(msgs: &'a [String], what: &str) -> Option<&'a [String]> {
    let b = format!("ksh_probe: {what} begin");
    let e = format!("ksh_probe: {what} end");
    let i = msgs.iter().rposition(|m| m == &b)?;
    let j = msgs[i..].iter().position(|m| m == &e)? + i;
    Some(&msgs[i + 1..j])
}

/// `name+0xoff/0xsize [mod]` → (name, off, size).
fn parse_sym(s: &str) -> Option<(&str, u64, u64)> {
    let s = s.trim().trim_start_matches("? ");
    let s = s.split(' ').next()?;
    let (name, rest) = s.rsplit_once('+')?;
    let (off, size) = rest.split_once('/')?;
    Some((name, hex(off).ok()?, hex(size).ok()?))
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let setup = || -> Result<_, String> {
        let name = ksh_proto::MODULE_BT_CALLER;
        let module_syms = expect::module_syms()?;
        let size = module_syms.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        let size = size.ok_or(format!(
            "{name} is not in {}",
            ksh_proto::files::FileId::ModuleSyms.path()
        ))?;
        let proc = proc_kallsyms::proc_kallsyms_where(|_, m| m == Some(ksh_proto::MODULE_NAME))?;
        // The fixture's functions where the module loader put them (the
        // module's features file), the rest as /proc/kallsyms lists them
        // (only to name frames): the frame this probe is about is not
        // located through kallsyms, which is under test.
        let features = probe_module::module_features()?;
        let addr_of = |n: &str| {
            features
                .get(n)
                .copied()
                .or_else(|| proc.iter().find(|s| s.name == n).map(|s| s.addr))
        };
        let start = probe_module::module_fn_addr(&features, name)?;
        // Module functions with their runtime extents.
        let mut fns: Vec<(u64, u64, String)> = module_syms
            .iter()
            .filter_map(|(n, s)| addr_of(n).map(|a| (a, a + s, n.clone())))
            .collect();
        fns.sort();
        let path = probe_module::module_file("backtrace")?;
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let mut frames = Vec::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() != 3 {
                return Err(format!("{path}: malformed line {l:?}"));
            }
            frames.push((hex(f[0])?, f[1].to_string(), f[2].to_string()));
        }
        Ok((start, size, fns, frames, kmsg()?))
    };
    let (start, size, fns, frames, msgs) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    let name = ksh_proto::MODULE_BT_CALLER;
    let end = start + size;
    let fx = Fixture {
        start,
        end,
        // Names and offsets: sizes are the sizes probes' business, and
        // size-blind kernels print the same frames with other sizes.
        want: format!("{name}+{size:#x}/"),
        fns,
        frames,
        msgs,
    };
    println!("# {} frames; {name} [{start:#x},{end:#x})", fx.frames.len());
    for (a, pb, _) in &fx.frames {
        println!("# frame {a:#x} {pb}");
    }
    end_of_function_frame(out, &fx);
    stack_trace_print(out, &fx);
    dump_stack(out, &fx);
}

/// What the fixture left: `ksh_bt_caller`'s extent, the module's
/// functions, the saved entries and the kernel's messages.
struct Fixture {
    /// `[start, end)` of [`ksh_proto::MODULE_BT_CALLER`] (runtime).
    start: u64,
    end: u64,
    /// How `%pB` must print its end: `NAME+SIZE/`.
    want: String,
    /// The module's functions with their runtime extents, by address.
    fns: Vec<(u64, u64, String)>,
    /// The saved entries: address, `%pB`, `%pBb`.
    frames: Vec<(u64, String, String)>,
    /// `/dev/kmsg`'s messages.
    msgs: Vec<String>,
}

/// `end-of-function-frame`: an entry is the function's end, and `%pB`
/// and `%pBb` print it as the function.
fn end_of_function_frame<W: Write>(out: &mut CaseWriter<W>, fx: &Fixture) {
    let (end, want, frames) = (fx.end, fx.want.as_str(), &fx.frames);
    let name = ksh_proto::MODULE_BT_CALLER;
    let at_end = frames.iter().position(|f| f.0 == end);
    match at_end {
        None => out.case(
            "end-of-function-frame",
            Verdict::Fail(vec![format!(
                "no saved return address is {name}'s end {end:#x}: the fixture did not \
                 produce the frame this probe is about (frames: {})",
                frames
                    .iter()
                    .map(|f| format!("{:#x}", f.0))
                    .collect::<Vec<_>>()
                    .join(" ")
            )]),
        ),
        Some(i) => {
            let (_, pb, pbb) = &frames[i];
            let bad: Vec<String> = [("%pB", pb), ("%pBb", pbb)]
                .iter()
                .filter(|(_, s)| !s.starts_with(want))
                .map(|(f, s)| format!("{f} of {end:#x}: want {want}..., kernel {s}"))
                .collect();
            out.checked_items("end-of-function-frame", 2, "formats", &bad, "");
        }
    }
}

/// `stack-trace-print`: `stack_trace_print()` printed one line per entry,
/// in order, each `name+off/size`; module frames name the function
/// containing the call.
fn stack_trace_print<W: Write>(out: &mut CaseWriter<W>, fx: &Fixture) {
    let (frames, fns) = (&fx.frames, &fx.fns);
    match block(&fx.msgs, "stack_trace_print") {
        None => out.case(
            "stack-trace-print",
            Verdict::Fail(vec![
                "no stack_trace_print block between the markers in /dev/kmsg".into(),
            ]),
        ),
        Some(lines) if lines.len() != frames.len() => out.case(
            "stack-trace-print",
            Verdict::Fail(vec![format!(
                "stack_trace_print printed {} lines for {} entries: {lines:?}",
                lines.len(),
                frames.len()
            )]),
        ),
        Some(lines) => {
            let mut bad = Vec::new();
            for ((a, _, _), l) in frames.iter().zip(lines) {
                let Some((n, off, _)) = parse_sym(l) else {
                    bad.push(format!("{a:#x}: printed as {:?}", l.trim()));
                    continue;
                };
                // A module frame: the function containing the call.
                let call = a - 1;
                if let Some(f) = fns.iter().find(|f| f.0 <= call && call < f.1) {
                    let fs = f.0;
                    if n != f.2 || off != a - fs {
                        bad.push(format!(
                            "{a:#x}: want {}+{:#x}/..., kernel {}",
                            f.2,
                            a - fs,
                            l.trim()
                        ));
                    }
                }
            }
            out.checked_items(
                "stack-trace-print",
                frames.len(),
                "frames",
                &bad,
                "stack_trace_save() saved no entry",
            );
        }
    }
}

/// `dump-stack`: `dump_stack()`'s trace has the function's end as a
/// frame, no frame as a bare address, and (x86_64) the unreliable entry
/// for the pointer to `ksh_bt_after` named.
fn dump_stack<W: Write>(out: &mut CaseWriter<W>, fx: &Fixture) {
    let (start, want, fns) = (fx.start, fx.want.as_str(), &fx.fns);
    let name = ksh_proto::MODULE_BT_CALLER;
    match block(&fx.msgs, "dump_stack") {
        None => out.case(
            "dump-stack",
            Verdict::Fail(vec![
                "no dump_stack block between the markers in /dev/kmsg".into()
            ]),
        ),
        Some(lines) => {
            let frames: Vec<&String> = lines
                .iter()
                .filter(|l| {
                    let t = l.trim().trim_start_matches("? ");
                    l.starts_with(' ') && (t.contains("+0x") || t.starts_with("0x"))
                })
                .collect();
            let mut bad: Vec<String> = frames
                .iter()
                .filter(|l| parse_sym(l).is_none())
                .map(|l| format!("frame printed as a bare address: {:?}", l.trim()))
                .collect();
            if !frames
                .iter()
                .any(|l| l.trim().trim_start_matches("? ").starts_with(want))
            {
                bad.push(format!(
                    "no frame {want} in dump_stack()'s trace: {:?}",
                    lines.iter().map(|l| l.trim()).collect::<Vec<_>>()
                ));
            }
            // x86 prints every text address found on the stack as a "? "
            // entry; the fixture leaves a pointer to a function that
            // follows padding there (arm64 walks frame records only).
            // A size-aware kernel names the function pointed to (or its
            // `__pfx_` padding symbol, which covers the byte before); a
            // size-blind one (the baseline) names the function before the
            // padding, as %pB always has; a bare address is the failure.
            if cfg!(target_arch = "x86_64") {
                let after = fns.iter().find(|f| f.2 == ksh_proto::MODULE_BT_AFTER);
                let named = |l: &&String| {
                    let t = l.trim();
                    after.is_some_and(|a| {
                        t.starts_with(&format!("? {}+0x0/", a.2))
                            || t.starts_with(&format!("? {name}+{:#x}/", a.0 - start))
                            // Where functions have padding symbols
                            // (CONFIG_CALL_PADDING: `__pfx_` before every
                            // function), one covers the byte before.
                            || t.starts_with(&format!("? __pfx_{}+", a.2))
                    })
                };
                if !frames.iter().any(named) {
                    bad.push(format!(
                        "no entry ? {}+0x0/... for the pointer to it on the stack (the byte before it is padding, where a size-aware %pB lookup finds no symbol): {:?}",
                        ksh_proto::MODULE_BT_AFTER,
                        lines.iter().map(|l| l.trim()).collect::<Vec<_>>()
                    ));
                }
            }
            out.checked_items(
                "dump-stack",
                frames.len(),
                "frames",
                &bad,
                "dump_stack() printed no frame",
            );
        }
    }
}
