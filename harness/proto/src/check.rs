//! The probe module's `check` file: a batch of addresses with the answer
//! expected for each goes in as one binary blob; the kernel runs every
//! lookup and sends back only the answers that differ, plus an end line
//! with the counts. One round trip per batch, so a probe's cost is the
//! kernel's lookups, not a line of text per address.
//!
//! The record layout is mirrored by `struct ksh_check_rec` in
//! `harness/probe-module/ksh_probe.c` (native endianness; guest and kernel
//! are the same machine): `addr`, `want_offset`, `want_size` (u64 each,
//! [`ANY`] for "any"), `id` (u32, echoed in the answer), `flags` (u16,
//! [`FLAG_FOUND`]), `names_len` (u16), then `names_len` bytes of
//! NUL-terminated names (any of them is accepted; none means any name),
//! padded to 8 bytes.
//!
//! Every write session starts with a [`HEADER_LEN`]-byte header: the
//! [`MAGIC`] and an offset the kernel adds to every record's address (the
//! KASLR offset, so a blob of link-time addresses made on the host is sent
//! as it is; 0 for runtime addresses).
//!
//! The kernel is a filter, not a judge: a probe asks for the strictest
//! answer it would accept and judges the returned mismatches itself, with
//! the same rules and messages as for a full list of answers.

/// First bytes of every `check` write session.
pub const MAGIC: [u8; 8] = *b"KSHCHK01";
/// Bytes of the header: [`MAGIC`], then the address offset (u64).
pub const HEADER_LEN: usize = 16;

/// The header of a session whose record addresses need `addr_offset`
/// added (wrapping) to become runtime addresses.
pub fn header(addr_offset: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..].copy_from_slice(&addr_offset.to_ne_bytes());
    h
}

/// First bytes of a timing session: the records' addresses are looked up
/// `rounds` times and nothing is compared (the bench's lookup cost).
pub const TIME_MAGIC: [u8; 8] = *b"KSHTIM01";

/// The header of a timing session (magic, address offset, rounds).
pub fn time_header(addr_offset: u64, rounds: u64) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[..8].copy_from_slice(&TIME_MAGIC);
    h[8..16].copy_from_slice(&addr_offset.to_ne_bytes());
    h[16..].copy_from_slice(&rounds.to_ne_bytes());
    h
}

/// Nanoseconds of each round from a timing session's reply
/// (`round_ns=A,B,...`), checked against its end line.
pub fn parse_time_reply(text: &str, records: usize) -> Result<Vec<u64>, String> {
    let rounds: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("round_ns="))
        .ok_or_else(|| format!("timing reply has no round_ns= line: {text:?}"))?
        .split(',')
        .map(|v| {
            v.parse()
                .map_err(|_| format!("timing reply: bad round {v:?}"))
        })
        .collect::<Result<_, _>>()?;
    let reply = parse_reply(
        text.lines()
            .filter(|l| !l.starts_with("round_ns="))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )?;
    if reply.checked != records as u64 {
        return Err(format!(
            "the kernel timed {} of {records} addresses",
            reply.checked
        ));
    }
    Ok(rounds)
}

/// Splits a blob of records (no header) into at most `parts` pieces at
/// record boundaries, reading only the fixed part of each record.
pub fn split(blob: &[u8], parts: usize) -> Result<Vec<&[u8]>, String> {
    let mut bounds = vec![0usize];
    let mut pos = 0usize;
    let mut n = 0usize;
    while pos < blob.len() {
        if blob.len() - pos < FIXED_LEN {
            return Err(format!(
                "record {n} at byte {pos}: {} bytes left, a record needs {FIXED_LEN}",
                blob.len() - pos
            ));
        }
        let names_len = u16::from_ne_bytes(blob[pos + 30..pos + 32].try_into().unwrap()) as usize;
        pos += (FIXED_LEN + names_len).next_multiple_of(8);
        n += 1;
        bounds.push(pos.min(blob.len()));
    }
    if pos != blob.len() {
        return Err(format!(
            "the last record runs {} bytes past the blob",
            pos - blob.len()
        ));
    }
    let per = n.div_ceil(parts.max(1)).max(1);
    Ok((0..n)
        .step_by(per)
        .map(|i| &blob[bounds[i]..bounds[(i + per).min(n)]])
        .collect())
}

/// "Any value" for an offset or a size.
pub const ANY: u64 = u64::MAX;
/// Flag: a symbol is expected (without it: "no symbol" is expected).
pub const FLAG_FOUND: u16 = 1;
/// Bytes of a record before its names.
pub const FIXED_LEN: usize = 32;

/// The answer expected at one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect<'a> {
    /// The address belongs to no symbol.
    NoSymbol,
    /// A symbol whose name is one of `names` (any name when empty), at
    /// `offset` with `size` (`None`: any).
    Symbol {
        names: Vec<&'a str>,
        offset: Option<u64>,
        size: Option<u64>,
    },
}

/// One address to check; `id` comes back with its mismatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub id: u32,
    pub addr: u64,
    pub expect: Expect<'a>,
}

impl Record<'_> {
    /// Appends the record's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (flags, names, offset, size) = match &self.expect {
            Expect::NoSymbol => (0, &[][..], None, None),
            Expect::Symbol {
                names,
                offset,
                size,
            } => (FLAG_FOUND, &names[..], *offset, *size),
        };
        let names_len: usize = names.iter().map(|n| n.len() + 1).sum();
        out.extend_from_slice(&self.addr.to_ne_bytes());
        out.extend_from_slice(&offset.unwrap_or(ANY).to_ne_bytes());
        out.extend_from_slice(&size.unwrap_or(ANY).to_ne_bytes());
        out.extend_from_slice(&self.id.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&(names_len as u16).to_ne_bytes());
        for n in names {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
    }

    /// Reads the records of a blob (what the module does; for tests).
    pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Record<'_>>, String> {
        let u64_at = |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap());
        let mut out = Vec::new();
        while !buf.is_empty() {
            if buf.len() < FIXED_LEN {
                return Err(format!(
                    "{} bytes left, a record needs {FIXED_LEN}",
                    buf.len()
                ));
            }
            let addr = u64_at(buf, 0);
            let offset = u64_at(buf, 8);
            let size = u64_at(buf, 16);
            let id = u32::from_ne_bytes(buf[24..28].try_into().unwrap());
            let flags = u16::from_ne_bytes(buf[28..30].try_into().unwrap());
            let names_len = u16::from_ne_bytes(buf[30..32].try_into().unwrap()) as usize;
            let end = FIXED_LEN + names_len;
            if buf.len() < end {
                return Err(format!("record {id}: names run past the blob"));
            }
            let names: Vec<&str> = buf[FIXED_LEN..end]
                .split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| std::str::from_utf8(n).map_err(|e| format!("record {id}: {e}")))
                .collect::<Result<_, _>>()?;
            let expect = if flags & FLAG_FOUND == 0 {
                Expect::NoSymbol
            } else {
                Expect::Symbol {
                    names,
                    offset: (offset != ANY).then_some(offset),
                    size: (size != ANY).then_some(size),
                }
            };
            out.push(Record { id, addr, expect });
            buf = &buf[end.next_multiple_of(8).min(buf.len())..];
        }
        Ok(out)
    }
}

/// What the kernel answered where it differed from the expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub id: u32,
    pub addr: u64,
    /// `None`: no symbol.
    pub symbol: Option<Answer>,
}

/// A symbol as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub name: String,
    pub offset: u64,
    pub size: u64,
    pub module: Option<String>,
}

/// The parsed reply: mismatches, then the end line's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub mismatches: Vec<Mismatch>,
    pub checked: u64,
    pub kernel_ns: u64,
}

/// Parses the module's reply; a reply without its end line (a truncated
/// or failed run) or with counts that disagree with its lines is an error.
pub fn parse_reply(text: &str) -> Result<Reply, String> {
    let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|e| format!("bad hex {s:?}: {e}"));
    let mut mismatches = Vec::new();
    for l in text.lines() {
        if let Some(end) = l.strip_prefix("end ") {
            let field = |k: &str| -> Result<u64, String> {
                end.split(' ')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("check reply: no {k}= in {l:?}"))
            };
            let (checked, mismatched) = (field("checked")?, field("mismatched")?);
            if mismatched != mismatches.len() as u64 {
                return Err(format!(
                    "check reply: end line says {mismatched} mismatched, {} lines came",
                    mismatches.len()
                ));
            }
            return Ok(Reply {
                mismatches,
                checked,
                kernel_ns: field("ns")?,
            });
        }
        let f: Vec<&str> = l.split(' ').collect();
        let [id, addr, found, size, offset, name, module] = f[..] else {
            return Err(format!("check reply: malformed line {l:?}"));
        };
        let id = id
            .parse()
            .map_err(|_| format!("check reply: bad id in {l:?}"))?;
        let symbol = match found {
            "1" => Some(Answer {
                name: name.to_string(),
                offset: hex(offset)?,
                size: hex(size)?,
                module: (module != "-").then(|| module.to_string()),
            }),
            "0" => None,
            _ => return Err(format!("check reply: bad found field in {l:?}")),
        };
        mismatches.push(Mismatch {
            id,
            addr: hex(addr)?,
            symbol,
        });
    }
    Err("check reply has no end line (the kernel's check did not finish)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let recs = vec![
            Record {
                id: 0,
                addr: 0xffff_ffff_8100_0000,
                expect: Expect::Symbol {
                    names: vec!["do_one_initcall"],
                    offset: Some(0),
                    size: Some(0xfc),
                },
            },
            Record {
                id: 7,
                addr: 0xffff_ffff_8100_0a86,
                expect: Expect::NoSymbol,
            },
            Record {
                id: 8,
                addr: 0x1234,
                expect: Expect::Symbol {
                    names: vec!["a", "alias_b"],
                    offset: None,
                    size: None,
                },
            },
        ];
        let mut blob = Vec::new();
        for r in &recs {
            r.encode(&mut blob);
            assert_eq!(blob.len() % 8, 0);
        }
        assert_eq!(Record::decode_all(&blob).unwrap(), recs);
        assert!(Record::decode_all(&blob[..blob.len() - 9]).is_err());
    }

    #[test]
    fn blobs_split_at_record_boundaries() {
        let mut blob = Vec::new();
        for i in 0..5u32 {
            Record {
                id: i,
                addr: u64::from(i),
                expect: Expect::Symbol {
                    names: vec!["x"; i as usize],
                    offset: None,
                    size: None,
                },
            }
            .encode(&mut blob);
        }
        let parts = split(&blob, 2).unwrap();
        assert_eq!(parts.len(), 2);
        let ids: Vec<u32> = parts
            .iter()
            .flat_map(|p| Record::decode_all(p).unwrap())
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert_eq!(split(&[], 2).unwrap().len(), 0);
        assert!(split(&blob[..blob.len() - 8], 2).is_err());
        assert_eq!(&header(0x10)[..8], b"KSHCHK01");
    }

    #[test]
    fn timing_reply_gives_every_round() {
        let t = "round_ns=100,120,90\nend checked=5 mismatched=0 ns=310\n";
        assert_eq!(parse_time_reply(t, 5).unwrap(), [100, 120, 90]);
        assert!(parse_time_reply(t, 6).is_err());
        assert!(parse_time_reply("end checked=5 mismatched=0 ns=1\n", 5).is_err());
        assert_eq!(&time_header(0, 3)[..8], b"KSHTIM01");
    }

    #[test]
    fn reply_needs_its_end_line_and_consistent_counts() {
        let text = "3 ffffffff81000a86 1 40 6 foo -\n9 ffffffffc0000010 0 - - - -\n\
                    end checked=10 mismatched=2 ns=12345\n";
        let r = parse_reply(text).unwrap();
        assert_eq!(r.checked, 10);
        assert_eq!(r.kernel_ns, 12345);
        assert_eq!(
            r.mismatches[0].symbol,
            Some(Answer {
                name: "foo".into(),
                offset: 6,
                size: 0x40,
                module: None
            })
        );
        assert_eq!(r.mismatches[1].symbol, None);
        assert!(parse_reply("3 ffffffff81000a86 1 40 6 foo -\n").is_err());
        assert!(parse_reply("end checked=10 mismatched=1 ns=1\n").is_err());
        assert!(parse_reply("garbage\nend checked=1 mismatched=0 ns=1\n").is_err());
    }
}
