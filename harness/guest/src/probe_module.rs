//! The probe module's interface (its debugfs files under
//! `ksh_proto::MODULE_DEBUGFS`): the `features` it reports, batched
//! lookups through `lookup` (one write, one read: a few thousand syscalls
//! for tens of thousands of addresses), the in-kernel batch `check`, the
//! lookup `bench` and `kprobe` registration.

use rustc_hash::FxHashMap as HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::time::Instant;

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
    one_answer_each("addresses", addrs.len(), out)
}

/// The module's answers, if it gave one for each of the `asked` `what`.
fn one_answer_each<T>(what: &str, asked: usize, answers: Vec<T>) -> Result<Vec<T>, String> {
    if answers.len() != asked {
        return Err(format!(
            "asked {asked} {what}, got {} answers",
            answers.len()
        ));
    }
    Ok(answers)
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
    one_answer_each("kprobes", addrs.len(), rcs)
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
