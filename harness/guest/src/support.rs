//! Support code shared by the probes (not a probe itself): the expectation files, the KASLR offset,
//! `/proc/kallsyms`, and batched lookups through the probe module's
//! debugfs `lookup` file (one write, one read: a few thousand syscalls for
//! tens of thousands of addresses).

use rustc_hash::FxHashMap as HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Instant;

use ksh_proto::files::Line as _;

use crate::ktap::summarize;

/// How many offending items a case prints as `detail:` lines (beyond the
/// inline summary); the rest are counted.
pub const DETAIL_CAP: usize = 200;

/// A failure summary plus the full list as `detail:` lines, up to a cap.
pub fn summarize_detail<T: std::fmt::Display>(what: &str, items: &[T]) -> Vec<String> {
    let mut out = summarize(what, items);
    if items.len() > crate::ktap::MAX_INLINE {
        for i in items.iter().skip(crate::ktap::MAX_INLINE).take(DETAIL_CAP) {
            out.push(format!("detail: {i}"));
        }
        let shown = crate::ktap::MAX_INLINE + DETAIL_CAP;
        if items.len() > shown {
            out.push(format!(
                "detail: {} more not printed ({} in all)",
                items.len() - shown,
                items.len()
            ));
        }
    }
    out
}

/// The text of an expectation file (decode it with `ksh_proto::files`).
pub fn expect_text(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// `module-syms.txt`: (name, ELF size) of the probe module's functions.
pub fn module_syms() -> Result<Vec<(String, u64)>, String> {
    let text = expect_text(ksh_proto::files::FileId::ModuleSyms.path())?;
    Ok(
        ksh_proto::files::decode::<ksh_proto::files::ModuleSymLine>(&text)?
            .into_iter()
            .map(|m| (m.name.to_string(), m.size))
            .collect(),
    )
}

/// The probe module's `features` file as `key → value` (hex values; the
/// function addresses there are what the module loader's relocations gave
/// the module's own code: independent of kallsyms).
pub fn module_features() -> Result<HashMap<String, u64>, String> {
    let path = module_file("features")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("{path}: not KEY=VALUE: {l:?}"))?;
            Ok((k.to_string(), hex(v.trim())?))
        })
        .collect()
}

/// The linker-resolved address of the module function `name` (see
/// [`module_features`]).
pub fn module_fn_addr(features: &HashMap<String, u64>, name: &str) -> Result<u64, String> {
    features
        .get(name)
        .copied()
        .ok_or_else(|| format!("{}/features has no {name}= line", ksh_proto::MODULE_DEBUGFS))
}

pub fn hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("bad hex {s:?}: {e}"))
}

/// `key=value` facts of the build (lines that do not parse are left out).
pub fn build_info() -> ksh_proto::files::BuildInfo {
    let text = expect_text(ksh_proto::files::FileId::BuildInfo.path()).unwrap_or_default();
    ksh_proto::files::BuildInfo {
        facts: text
            .lines()
            .filter_map(|l| ksh_proto::files::BuildInfoLine::parse(l).ok())
            .map(|b| (b.key.to_string(), b.value.to_string()))
            .collect(),
    }
}

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

/// The module's debugfs directory, or why it is missing.
pub fn module_file(name: &str) -> Result<String, String> {
    let path = format!("{}/{name}", ksh_proto::MODULE_DEBUGFS);
    if std::path::Path::new(&path).exists() {
        return Ok(path);
    }
    let status = std::fs::read_to_string(ksh_proto::MODULE_LOAD_STATUS)
        .unwrap_or_else(|e| format!("(no {}: {e})", ksh_proto::MODULE_LOAD_STATUS));
    Err(format!(
        "{path} is missing; loading {} said: {}",
        ksh_proto::MODULE_PATH,
        status.trim()
    ))
}

/// The kernel's answer for one address.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub found: bool,
    pub size: u64,
    pub offset: u64,
    pub name: String,
    pub module: Option<String>,
    /// `%pS` of the address.
    pub ps: String,
}

impl Lookup {
    /// `name+0xoff/0xsize` or `not found`, plus the `%pS`, for messages.
    pub fn describe(&self) -> String {
        if self.found {
            format!("{}+{:#x}/{:#x}", self.name, self.offset, self.size)
        } else if self.ps == "-" {
            "no symbol".to_string()
        } else {
            format!("no symbol (%pS {})", self.ps)
        }
    }
}

/// Writes `text` to a module file and reads the whole answer back.
fn transact(file: &str, text: &str) -> Result<String, String> {
    transact_bytes(file, text.as_bytes())
}

/// Writes `input` to a module file and reads the whole (text) answer back.
fn transact_bytes(file: &str, input: &[u8]) -> Result<String, String> {
    let path = module_file(file)?;
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{path}: {e}"))?;
    f.write_all(input)
        .map_err(|e| format!("writing {path}: {e}"))?;
    let mut out = String::with_capacity(4096);
    f.read_to_string(&mut out)
        .map_err(|e| format!("reading {path}: {e}"))?;
    Ok(out)
}

/// Looks up runtime addresses in one batch; answers in the same order.
pub fn lookup(addrs: &[u64]) -> Result<Vec<Lookup>, String> {
    lookup_in("lookup", addrs)
}

/// [`lookup`] without `%pS` (its `ps` is `-`): half the kernel's work.
pub fn lookup_no_ps(addrs: &[u64]) -> Result<Vec<Lookup>, String> {
    lookup_in("lookup-nops", addrs)
}

fn lookup_in(file: &str, addrs: &[u64]) -> Result<Vec<Lookup>, String> {
    if addrs.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    // Big batches are split over the guest's CPUs: every open file of the
    // module is its own session, and both the kernel's lookups and the
    // parsing here are most of a probe's time under TCG.
    let lanes = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = if lanes > 1 && addrs.len() >= PARALLEL_LOOKUP_MIN {
        let chunk = addrs.len().div_ceil(lanes);
        let parts: Vec<Result<Vec<Lookup>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = addrs
                .chunks(chunk)
                .map(|part| scope.spawn(move || lookup_batch(file, part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("lookup thread panicked".into()))
                })
                .collect()
        });
        let mut all = Vec::with_capacity(addrs.len());
        for p in parts {
            all.extend(p?);
        }
        all
    } else {
        lookup_batch(file, addrs)?
    };
    println!(
        "# {} lookups in {} ms",
        addrs.len(),
        started.elapsed().as_millis()
    );
    Ok(out)
}

/// The kernel's answers where they differ from `records`' expectations
/// (the module's `check` file: one binary write and one read per CPU lane,
/// every lookup done in the kernel). Records matching their expectation
/// are absent from `differing`.
pub struct CheckOutcome {
    /// Record id → the kernel's answer (its `ps` is `-`).
    pub differing: HashMap<u32, Lookup>,
    /// Records the kernel checked (equals the records given).
    pub checked: usize,
}

impl CheckOutcome {
    pub fn get(&self, id: usize) -> Option<&Lookup> {
        self.differing.get(&(id as u32))
    }
}

pub fn check(records: &[ksh_proto::check::Record]) -> Result<CheckOutcome, String> {
    let mut blob = Vec::with_capacity(records.len() * 64);
    for r in records {
        r.encode(&mut blob);
    }
    check_blob(&blob, records.len(), 0)
}

/// [`check`] of encoded records (`records` of them, no header), whose
/// addresses become runtime addresses with `addr_offset` added (by the
/// kernel, so a blob made on the host is sent as it is).
pub fn check_blob(blob: &[u8], records: usize, addr_offset: u64) -> Result<CheckOutcome, String> {
    let started = Instant::now();
    let lanes = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lanes = if records >= PARALLEL_LOOKUP_MIN {
        lanes
    } else {
        1
    };
    let parts = ksh_proto::check::split(blob, lanes)?;
    let replies: Vec<Result<ksh_proto::check::Reply, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut input = Vec::with_capacity(part.len() + ksh_proto::check::HEADER_LEN);
                    input.extend_from_slice(&ksh_proto::check::header(addr_offset));
                    input.extend_from_slice(part);
                    ksh_proto::check::parse_reply(&transact_bytes("check", &input)?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("check thread panicked".into()))
            })
            .collect()
    });
    let mut out = CheckOutcome {
        differing: HashMap::default(),
        checked: 0,
    };
    let mut kernel_ns = 0;
    for reply in replies {
        let reply = reply?;
        out.checked += reply.checked as usize;
        kernel_ns += reply.kernel_ns;
        for m in reply.mismatches {
            let l = match m.symbol {
                Some(a) => Lookup {
                    found: true,
                    size: a.size,
                    offset: a.offset,
                    name: a.name,
                    module: a.module,
                    ps: "-".into(),
                },
                None => Lookup {
                    found: false,
                    size: 0,
                    offset: 0,
                    name: String::new(),
                    module: None,
                    ps: "-".into(),
                },
            };
            out.differing.insert(m.id, l);
        }
    }
    if out.checked != records {
        return Err(format!(
            "the kernel checked {} of {records} records",
            out.checked
        ));
    }
    println!(
        "# {} addresses checked in the kernel in {} ms ({} ms of lookups over all lanes); {} differ from the strictest expectation",
        out.checked,
        started.elapsed().as_millis(),
        kernel_ns / 1_000_000,
        out.differing.len()
    );
    Ok(out)
}

/// ns of each of `rounds` rounds of lookups of the addresses of `blob`
/// (encoded check records, `records` of them), in one kernel session on
/// one CPU: the bench's cost of looking up every sized symbol.
pub fn time_blob(
    blob: &[u8],
    records: usize,
    addr_offset: u64,
    rounds: u64,
) -> Result<Vec<u64>, String> {
    let mut input = Vec::with_capacity(blob.len() + 24);
    input.extend_from_slice(&ksh_proto::check::time_header(addr_offset, rounds));
    input.extend_from_slice(blob);
    ksh_proto::check::parse_time_reply(&transact_bytes("check", &input)?, records)
}

/// Below this many addresses one session is quicker than starting threads.
const PARALLEL_LOOKUP_MIN: usize = 4096;

/// The kernel's answer for one runtime address (no timing line).
pub fn lookup_one(addr: u64) -> Result<Lookup, String> {
    lookup_batch("lookup", &[addr])?
        .pop()
        .ok_or_else(|| format!("the module gave no answer for {addr:#x}"))
}

/// One module session: write the batch, read and parse the answers.
fn lookup_batch(file: &str, addrs: &[u64]) -> Result<Vec<Lookup>, String> {
    use std::fmt::Write as _;
    let mut req = String::with_capacity(addrs.len() * 17);
    for a in addrs {
        let _ = writeln!(req, "{a:x}");
    }
    let text = transact(file, &req)?;
    parse_lookups(&text, addrs)
}

/// Parses the module's answer lines (`ADDR FOUND SIZE OFFSET NAME MODULE\t%pS`)
/// for the addresses asked, in order.
pub fn parse_lookups(text: &str, addrs: &[u64]) -> Result<Vec<Lookup>, String> {
    let mut out = Vec::with_capacity(addrs.len());
    for (i, l) in text.lines().enumerate() {
        let (fields, ps) = l
            .split_once('\t')
            .ok_or_else(|| format!("lookup line {}: no tab: {l:?}", i + 1))?;
        let mut f = fields.split(' ');
        let (Some(a), Some(found), Some(size), Some(offset), Some(name), Some(module), None) = (
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
        ) else {
            return Err(format!("lookup line {}: {l:?}", i + 1));
        };
        let addr = hex(a)?;
        if addrs.get(i) != Some(&addr) {
            return Err(format!(
                "lookup line {}: answer for {addr:#x}, asked {:?}",
                i + 1,
                addrs.get(i)
            ));
        }
        let found = found == "1";
        out.push(Lookup {
            found,
            size: if found { hex(size)? } else { 0 },
            offset: if found { hex(offset)? } else { 0 },
            name: if found {
                name.to_string()
            } else {
                String::new()
            },
            module: (module != "-").then(|| module.to_string()),
            ps: ps.to_string(),
        });
    }
    if out.len() != addrs.len() {
        return Err(format!(
            "asked {} addresses, got {} answers",
            addrs.len(),
            out.len()
        ));
    }
    Ok(out)
}

/// Runs the module's benchmark: ns per lookup and per `%pS` of `n` random
/// addresses in `[lo, hi)` (runtime addresses).
pub fn bench(n: u64, lo: u64, hi: u64) -> Result<String, String> {
    let path = module_file("bench")?;
    std::fs::write(&path, format!("{n} {lo:x} {hi:x}\n"))
        .map_err(|e| format!("writing {path}: {e}"))?;
    let r = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(r.trim().to_string())
}

/// Link-time addresses of `names` in the expected kallsyms table (one pass).
pub fn expected_addresses(names: &[&str]) -> Result<Vec<u64>, String> {
    names
        .iter()
        .zip(expected_addresses_if_any(names)?)
        .map(|(n, a)| {
            a.ok_or_else(|| {
                format!(
                    "{n} is not in {}",
                    ksh_proto::files::FileId::Kallsyms.path()
                )
            })
        })
        .collect()
}

/// Like [`expected_addresses`], `None` for a name the table does not have.
pub fn expected_addresses_if_any(names: &[&str]) -> Result<Vec<Option<u64>>, String> {
    let mut found: Vec<Option<u64>> = vec![None; names.len()];
    let text = expect_text(ksh_proto::files::FileId::Kallsyms.path())?;
    // Stops at the last name found: `_text` is near the top.
    let mut left = names.len();
    for (n, l) in text.lines().enumerate() {
        let k = ksh_proto::files::KallsymsLine::parse(l).map_err(|e| {
            format!(
                "{}:{}: {e}: {l:?}",
                ksh_proto::files::FileId::Kallsyms.path(),
                n + 1
            )
        })?;
        if let Some(i) = names.iter().position(|&x| x == k.name) {
            if found[i].is_none() {
                found[i] = Some(k.addr);
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// `register_kprobe()` results for runtime addresses (0 = accepted).
pub fn kprobe(addrs: &[u64]) -> Result<Vec<i64>, String> {
    let mut req = String::new();
    for a in addrs {
        req.push_str(&format!("{a:x}\n"));
    }
    let text = transact("kprobe", &req)?;
    let rcs = text
        .lines()
        .map(|l| {
            l.split(' ')
                .nth(1)
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| {
                    format!("the module's kprobe answer {l:?} does not parse (want \"ADDR RC\")")
                })
        })
        .collect::<Result<Vec<i64>, String>>()?;
    if rcs.len() != addrs.len() {
        return Err(format!(
            "asked {} kprobes, got {} answers",
            addrs.len(),
            rcs.len()
        ));
    }
    Ok(rcs)
}

/// Symbols of `sizes.txt`, grouped by link-time address.
pub struct Group {
    pub addr: u64,
    /// Every kallsyms name at the address (sized or not), in table order.
    pub names: Vec<String>,
    /// (name, ELF size, another symbol starts inside), in table order.
    pub sized: Vec<(String, u64, bool)>,
}

impl Group {
    /// Sizes the kernel may report for a lookup that named `reported`: that
    /// alias's own size if it is sized, else any sized alias's size.
    pub fn accepted_sizes(&self, reported: &str) -> Vec<u64> {
        match self.sized.iter().find(|s| s.0 == reported) {
            Some(s) => vec![s.1],
            None => self.sized.iter().map(|s| s.1).collect(),
        }
    }
    pub fn label(&self) -> String {
        match self.sized.first() {
            Some((n, s, _)) if self.names.len() == 1 => {
                format!("{n} ({:#x}, size {s:#x})", self.addr)
            }
            _ => format!("{} ({:#x})", self.names.join("="), self.addr),
        }
    }
}

impl From<&ksh_proto::sizes::SizeGroup<'_>> for Group {
    fn from(g: &ksh_proto::sizes::SizeGroup<'_>) -> Group {
        Group {
            addr: g.addr,
            names: g.names.iter().map(|n| n.to_string()).collect(),
            sized: g
                .sized
                .iter()
                .map(|&(n, s, x)| (n.to_string(), s, x))
                .collect(),
        }
    }
}

/// The groups of `sizes.txt` at the link-time addresses `keep` accepts
/// (parsed by the contract's own parser, `ksh_proto::sizes::parse`). Most
/// callers want a few hundred of 60k+ lines: each line's address is read
/// first and only the kept lines are parsed (a full parse and grouping of
/// the file cost a large part of a probe's time under TCG).
pub fn size_groups_where(keep: impl Fn(u64) -> bool) -> Result<Vec<Group>, String> {
    let text = std::fs::read_to_string(ksh_proto::files::FileId::Sizes.path())
        .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::Sizes.path()))?;
    let mut kept = String::new();
    for l in text.lines() {
        let addr = l.split(' ').next().unwrap_or("");
        // A line whose address does not parse is kept: the parser reports it.
        if u64::from_str_radix(addr, 16).map_or(true, &keep) {
            kept.push_str(l);
            kept.push('\n');
        }
    }
    Ok(ksh_proto::sizes::parse(&kept)?
        .iter()
        .map(Group::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_module_answers() {
        let text = "ffffffff81000000 1 fc 0 do_one_initcall -\tdo_one_initcall+0x0/0xfc\n\
                    ffffffff81000a86 0 - - - -\t0xffffffff81000a86\n\
                    ffffffffc0000010 1 b 0 ksh_probe_small ksh_probe\tksh_probe_small+0x0/0xb [ksh_probe]\n";
        let l = parse_lookups(
            text,
            &[0xffffffff81000000, 0xffffffff81000a86, 0xffffffffc0000010],
        )
        .unwrap();
        assert!(
            l[0].found && l[0].size == 0xfc && l[0].offset == 0 && l[0].name == "do_one_initcall"
        );
        assert!(!l[1].found && l[1].ps == "0xffffffff81000a86");
        assert_eq!(l[2].module.as_deref(), Some("ksh_probe"));
        assert_eq!(l[2].ps, "ksh_probe_small+0x0/0xb [ksh_probe]");
        assert!(parse_lookups(text, &[1, 2, 3]).is_err());
        assert!(parse_lookups("", &[1]).is_err());
    }
}
