// SPDX-License-Identifier: GPL-2.0-only
//! `kallsyms-gen`: a byte-identical Rust drop-in for Linux 6.12's
//! `scripts/kallsyms` (C), plus an optional `kallsyms_sizes` table.
//!
//! Usage: `kallsyms-gen [--all-symbols] [--absolute-percpu] [--symbol-sizes] in.map > out.S`
//!
//! The pipeline mirrors `scripts/kallsyms.c` stage by stage so the two can be
//! read side by side:
//!
//! `read_map` → `shrink_table` → `make_percpus_absolute` → `sort_symbols` →
//! `record_relative_base` → `optimize_token_table` → `write_src`
//!
//! For every input the C tool accepts, the output is byte-identical to it.
//! In addition, `nm -n -S` lines (`ADDR SIZE TYPE NAME`) are accepted; the
//! size is ignored unless `--symbol-sizes` is given, in which case a
//! `kallsyms_sizes` table is emitted (see [`write_sizes_table`]).
//!
//! Symbol names are handled as bytes throughout (non-UTF-8 bytes are data).
//!
//! C behaviour replicated on purpose (all covered by the tests):
//! - `getopt_long` parsing: unambiguous prefixes (`--all`), permuted
//!   arguments, `--`, `POSIXLY_CORRECT`; any error → usage, exit 1; the
//!   first non-option argument is the map, further ones are ignored.
//! - Addresses are read with `strtoull(…, 16)` semantics (leading blanks,
//!   sign, `0x`, saturation on overflow); the type must be ASCII; exactly
//!   one blank on each side of it; only a final `\n` is stripped (`\r` stays
//!   in the name); a NUL byte ends the name.
//! - A last line `"ADDR "` without newline takes its type from the C string
//!   terminator and its name from bytes an earlier, longer line left in the
//!   `getline()` buffer (see [`read_map`]).
//! - Names of `KSYM_NAME_LEN` (512) bytes or more: warning, symbol skipped
//!   (before the `_text`/ignore checks). Without `_stext`/`_etext` the text
//!   range is `[0, 0]`; symbols at `_etext`/`_einittext` are dropped.
//! - A NUL type byte: comments print an empty name, and `kallsyms_seqs_of_names`
//!   sorts such a symbol by its *compressed* bytes (C's `strcpy` restores
//!   only the leading NUL).
//! - `printf` details: `%#x` prints `0` for zero, token strings and names
//!   are printed raw (no escaping) and stop at a NUL.
//! - Fatal errors (offset out of range) exit 1. Unlike C, they are detected
//!   before any output is written, so stdout stays empty on failure.
//!
//! Where a stage does something faster than the C tool, a "Faster than C"
//! comment says what and why; the results are the same. On x86_64 the pair
//! search uses SSE2, and AVX2 when the CPU has it (detected at run time);
//! elsewhere a portable version.
//!
//! This file is self-contained (std only) so that it also builds as a Kbuild
//! Rust host program with a plain `rustc --edition=2021 -O main.rs`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::exit;

/// Same constant as the C tool (and `include/linux/kallsyms.h`): names of
/// `KSYM_NAME_LEN` bytes or more are rejected with a warning and skipped.
const KSYM_NAME_LEN: usize = 512;

const USAGE: &str = concat!(
    "Usage: kallsyms [--all-symbols] [--absolute-percpu]",
    " [--symbol-sizes [--compact-sizes]] in.map > out.S\n"
);

// ---------------------------------------------------------------------------
// Command line (GNU getopt_long compatible)
// ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Options {
    all_symbols: bool,
    absolute_percpu: bool,
    symbol_sizes: bool,
    /// With `symbol_sizes`: the KSZ4 tables instead of `kallsyms_sizes`.
    compact_sizes: bool,
    input: OsString,
}

fn usage() -> ! {
    eprint!("{USAGE}");
    exit(1);
}

/// Mirrors `getopt_long(argc, argv, "", long_options, NULL)` as the C tool
/// uses it: long options only, unambiguous prefixes accepted, arguments
/// permuted (unless `POSIXLY_CORRECT` is set), `--` ends option parsing.
/// Any error prints the usage and exits with status 1, like the C tool.
/// The input file is the first non-option argument; further ones are ignored.
fn parse_args(args: &[OsString]) -> Options {
    const LONG: [&str; 4] = [
        "all-symbols",
        "absolute-percpu",
        "symbol-sizes",
        "compact-sizes",
    ];
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
    let mut opts = Options::default();
    let mut nonopts: Vec<&OsString> = Vec::new();
    let mut options_done = false;
    for arg in args.iter().skip(1) {
        let a = arg.as_bytes();
        if options_done {
            nonopts.push(arg);
            continue;
        }
        if a == b"--" {
            options_done = true;
            continue;
        }
        if let Some(body) = a.strip_prefix(b"--") {
            let (name, has_value) = match body.iter().position(|&c| c == b'=') {
                Some(p) => (&body[..p], true),
                None => (body, false),
            };
            let found = match LONG.iter().position(|l| l.as_bytes() == name) {
                Some(i) => i,
                None => {
                    let cands: Vec<usize> = (0..LONG.len())
                        .filter(|&i| LONG[i].as_bytes().starts_with(name))
                        .collect();
                    if cands.len() != 1 {
                        let what = if cands.is_empty() {
                            "unrecognized"
                        } else {
                            "ambiguous"
                        };
                        eprintln!("kallsyms-gen: {what} option '{}'", arg.to_string_lossy());
                        usage();
                    }
                    cands[0]
                }
            };
            if has_value {
                eprintln!(
                    "kallsyms-gen: option '--{}' doesn't allow an argument",
                    LONG[found]
                );
                usage();
            }
            match found {
                0 => opts.all_symbols = true,
                1 => opts.absolute_percpu = true,
                2 => opts.symbol_sizes = true,
                _ => opts.compact_sizes = true,
            }
            continue;
        }
        if a.len() > 1 && a[0] == b'-' {
            eprintln!("kallsyms-gen: invalid option -- '{}'", a[1].escape_ascii());
            usage();
        }
        nonopts.push(arg);
        if posixly_correct {
            options_done = true;
        }
    }
    match nonopts.first() {
        Some(f) => opts.input = (*f).clone(),
        None => usage(),
    }
    // The compact encoding is of the sizes: without them there is nothing
    // to encode, and silently writing no table would hide a Kbuild mistake.
    if opts.compact_sizes && !opts.symbol_sizes {
        eprintln!("kallsyms-gen: --compact-sizes needs --symbol-sizes");
        usage();
    }
    opts
}

// ---------------------------------------------------------------------------
// Symbol table
// ---------------------------------------------------------------------------

/// `struct addr_range` of the C tool.
#[derive(Clone, Copy)]
struct AddrRange {
    start_sym: &'static [u8],
    end_sym: &'static [u8],
    start: u64,
    end: u64,
}

impl AddrRange {
    fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr <= self.end
    }
}

/// The symbol table. Each symbol's bytes (type char followed by the name,
/// exactly like the C tool's `sym[]`) live in one flat arena instead of one
/// heap allocation per symbol.
struct Table {
    /// Type char + name of every symbol, back to back.
    arena: Vec<u8>,
    /// Where each symbol's bytes are in `arena`.
    slot: Vec<Slot>,
    addr: Vec<u64>,
    /// `nm -S` sizes (0 when absent); only collected with `--symbol-sizes`.
    size: Vec<u64>,
    /// `percpu_absolute` flag of the C tool.
    percpu_absolute: Vec<bool>,
    /// The uncompressed symbols (type + name), for the comments and the
    /// name sort of `write_src`: where each starts in `names`, and its length.
    names: Vec<u8>,
    name_start: Vec<u32>,
    name_len: Vec<u16>,
    text_ranges: [AddrRange; 2],
    percpu_range: AddrRange,
    text: u64,
    relative_base: u64,
}

/// Start and current length (type + name; shrinks while compressing) of a
/// symbol in the arena; one 8-byte entry, so that the compression finds a
/// symbol with one memory access.
#[derive(Clone, Copy)]
struct Slot {
    start: u32,
    len: u32,
}

impl Table {
    fn new() -> Self {
        Table {
            arena: Vec::new(),
            slot: Vec::new(),
            addr: Vec::new(),
            size: Vec::new(),
            percpu_absolute: Vec::new(),
            names: Vec::new(),
            name_start: Vec::new(),
            name_len: Vec::new(),
            text_ranges: [
                AddrRange {
                    start_sym: b"_stext",
                    end_sym: b"_etext",
                    start: 0,
                    end: 0,
                },
                AddrRange {
                    start_sym: b"_sinittext",
                    end_sym: b"_einittext",
                    start: 0,
                    end: 0,
                },
            ],
            percpu_range: AddrRange {
                start_sym: b"__per_cpu_start",
                end_sym: b"__per_cpu_end",
                start: u64::MAX,
                end: 0,
            },
            text: 0,
            relative_base: 0,
        }
    }

    fn count(&self) -> usize {
        self.addr.len()
    }

    /// Packs the (compressed, shrunk) symbols back to back again, keeping
    /// the working set of the compression small.
    fn compact(&mut self) {
        let mut pos = 0;
        for slot in &mut self.slot {
            let (s, l) = (slot.start as usize, slot.len as usize);
            self.arena.copy_within(s..s + l, pos);
            slot.start = pos as u32;
            pos += l;
        }
        self.arena.truncate(pos);
        self.arena.resize(pos + ARENA_SLACK, 0);
    }

    fn sym(&self, i: usize) -> &[u8] {
        let Slot { start, len } = self.slot[i];
        &self.arena[start as usize..(start + len) as usize]
    }
}

fn fatal(msg: &str) -> ! {
    eprintln!("kallsyms-gen: {msg}");
    exit(1);
}

// ---------------------------------------------------------------------------
// read_map
// ---------------------------------------------------------------------------

/// C's `isspace()` in the "C" locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_val(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as u64),
        b'a'..=b'f' => Some((c - b'a' + 10) as u64),
        b'A'..=b'F' => Some((c - b'A' + 10) as u64),
        _ => None,
    }
}

/// glibc `strtoull(s, &end, 16)`: returns the value and the end index, or
/// `None` when no digits were converted (which the C tool always rejects).
fn strtoull16(get: impl Fn(usize) -> u8) -> Option<(u64, usize)> {
    let mut i = 0;
    while is_c_space(get(i)) {
        i += 1;
    }
    let mut negative = false;
    if get(i) == b'-' || get(i) == b'+' {
        negative = get(i) == b'-';
        i += 1;
    }
    if get(i) == b'0' && get(i + 1).eq_ignore_ascii_case(&b'X') {
        i += 2;
    }
    let digits_start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(d) = hex_val(get(i)) {
        match value.checked_mul(16).and_then(|v| v.checked_add(d)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        return None;
    }
    let value = if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    };
    Some((value, i))
}

/// One parsed map line: `(addr, size, type, name range in the line buffer)`.
struct Line {
    addr: u64,
    size: u64,
    typ: u8,
    name: (usize, usize),
}

/// Parses a line the way the C tool's `read_symbol()` does, on the C line
/// buffer `cbuf` (see [`read_map`] for why it is a persistent buffer).
fn parse_c_line(cbuf: &[u8]) -> Option<Line> {
    let get = |i: usize| cbuf.get(i).copied().unwrap_or(0);
    let (addr, mut p) = strtoull16(get)?;
    if get(p) != b' ' {
        return None;
    }
    p += 1;
    let typ = get(p);
    p += 1;
    if typ >= 0x80 || get(p) != b' ' {
        return None;
    }
    p += 1;
    Some(Line {
        addr,
        size: 0,
        typ,
        name: (p, c_strlen_end(cbuf, p)),
    })
}

/// Parses an `nm -S` line, `ADDR SIZE TYPE NAME` (an extension; only tried
/// when the C format does not match, so every line the C tool accepts is
/// read exactly as the C tool reads it). `nm` pads sizes to 8 or 16 hex
/// digits; a one-digit "size" would be taken as the type, as C does.
fn parse_sized_line(cbuf: &[u8], line_len: usize) -> Option<Line> {
    let get = |i: usize| if i < line_len { cbuf[i] } else { 0 };
    let (addr, mut p) = strtoull16(get)?;
    if get(p) != b' ' {
        return None;
    }
    p += 1;
    let size_start = p;
    let mut size: u64 = 0;
    while let Some(d) = hex_val(get(p)) {
        size = size.checked_mul(16).and_then(|v| v.checked_add(d))?;
        p += 1;
    }
    if p == size_start || get(p) != b' ' {
        return None;
    }
    p += 1;
    let typ = get(p);
    if p >= line_len || typ >= 0x80 || get(p + 1) != b' ' {
        return None;
    }
    p += 2;
    let end = c_strlen_end(&cbuf[..line_len.max(p)], p);
    Some(Line {
        addr,
        size,
        typ,
        name: (p, end),
    })
}

/// Index of the first NUL at or after `from` (or the end of the buffer).
fn c_strlen_end(buf: &[u8], from: usize) -> usize {
    if from >= buf.len() {
        return buf.len().max(from);
    }
    match buf[from..].iter().position(|&c| c == 0) {
        Some(n) => from + n,
        None => buf.len(),
    }
}

/// C's `is_ignored_symbol()`.
fn is_ignored_symbol(name: &[u8], typ: u8) -> bool {
    if typ == b'u' || typ == b'n' {
        return true;
    }
    if typ.eq_ignore_ascii_case(&b'A') {
        // Keep these useful absolute symbols
        const KEEP: [&[u8]; 4] = [
            b"__kernel_syscall_via_break",
            b"__kernel_syscall_via_epc",
            b"__kernel_sigtramp",
            b"__gp",
        ];
        if !KEEP.contains(&name) {
            return true;
        }
    }
    false
}

/// C's `check_symbol_range()`.
fn check_symbol_range(name: &[u8], addr: u64, ranges: &mut [AddrRange]) {
    for ar in ranges.iter_mut() {
        if name == ar.start_sym {
            ar.start = addr;
            return;
        } else if name == ar.end_sym {
            ar.end = addr;
            return;
        }
    }
}

/// Reads the map like the C tool's `read_map()`/`read_symbol()`.
///
/// The C tool parses each line in place in its `getline()` buffer, and for a
/// last line ending in `"ADDR "` (no newline) it reads the type from the
/// terminating NUL and then looks *past* it, into bytes left over from longer
/// earlier lines. To stay byte-identical even there, every line is copied
/// into a persistent, zero-initialised buffer `cbuf` that keeps such
/// leftovers, and lines that are not in the common form are parsed there.
///
/// Faster than C: lines of the common form `ADDR T NAME\n` (see
/// [`parse_simple_line`]) are parsed in place in the read buffer, without
/// `strtoull`'s generality or a per-line allocation.
fn read_map(path: &OsString, opts: &Options) -> Table {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {}", path.to_string_lossy(), io_error_text(&e));
            exit(1);
        }
    };
    let read_error = |e: io::Error| -> ! {
        eprintln!("read_symbol: {}", io_error_text(&e));
        exit(1);
    };
    let mut reader = BufReader::with_capacity(1 << 17, file);
    let mut table = Table::new();
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cbuf: Vec<u8> = vec![0; 120];
    let mut lineno: u64 = 0;
    loop {
        // Common case: whole lines of the simple form in the read buffer.
        let buf = reader.fill_buf().unwrap_or_else(|e| read_error(e));
        if buf.is_empty() {
            break;
        }
        let mut pos = 0;
        while let Some((parsed, len)) = parse_simple_line(&buf[pos..]) {
            let line = &buf[pos..pos + len];
            lineno += 1;
            keep_c_line(&mut cbuf, line);
            add_symbol(
                &mut table,
                &parsed,
                &line[parsed.name.0..parsed.name.1],
                opts,
            );
            pos += len;
        }
        if pos > 0 {
            reader.consume(pos);
            continue;
        }

        // Any other line (or one that crosses the end of the read buffer).
        line.clear();
        reader
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| read_error(e));
        lineno += 1;
        let line_len = keep_c_line(&mut cbuf, &line);
        let format_error = |why: &str| -> ! {
            eprintln!(
                "kallsyms-gen: {}:{}: line format error{why}: {}",
                path.to_string_lossy(),
                lineno,
                excerpt(&line[..line_len])
            );
            exit(1);
        };
        let parsed = match parse_c_line(&cbuf) {
            Some(l) => l,
            // `nm -S` lines only with --symbol-sizes: the C tool rejects
            // them, and so does this one without the option.
            None => match parse_sized_line(&cbuf, line_len) {
                Some(l) if opts.symbol_sizes => {
                    if l.size > u32::MAX as u64 {
                        format_error(" (size does not fit in kallsyms_sizes)");
                    }
                    l
                }
                Some(_) => format_error(" (a size column needs --symbol-sizes)"),
                None => format_error(""),
            },
        };
        add_symbol(
            &mut table,
            &parsed,
            &cbuf[parsed.name.0..parsed.name.1],
            opts,
        );
    }
    table.percpu_absolute = vec![false; table.count()];
    table
}

/// At most 80 bytes of a map line for an error message, with its length
/// when cut (a corrupt map can hold a single line of megabytes).
fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 80;
    if line.len() <= MAX {
        String::from_utf8_lossy(line).into_owned()
    } else {
        format!(
            "{}... ({} bytes)",
            String::from_utf8_lossy(&line[..MAX]),
            line.len()
        )
    }
}

/// Copies `line` into the C line buffer `cbuf` the way `getline()` leaves it
/// and `read_symbol()` then changes it (newline replaced by a NUL); returns
/// the length without the newline.
fn keep_c_line(cbuf: &mut Vec<u8>, line: &[u8]) -> usize {
    let n = line.len();
    if cbuf.len() < n + 2 {
        cbuf.resize(n + 2, 0);
    }
    cbuf[..n].copy_from_slice(line);
    cbuf[n] = 0;
    if line[n - 1] == b'\n' {
        cbuf[n - 1] = 0;
        n - 1
    } else {
        n
    }
}

/// Value of each hex digit, 0xff for other bytes.
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        t[HEX[i] as usize] = i as u8;
        t[HEX[i].to_ascii_uppercase() as usize] = i as u8;
        i += 1;
    }
    t
};

/// Parses a line of the form `ADDR T NAME\n` at the start of `buf`: 1 to 16
/// hex digits, one blank, an ASCII type other than NUL or newline, one
/// blank, and a name without NUL bytes, all within `buf`. For such a line
/// `read_symbol()`'s result is plain (no sign, prefix, overflow or early
/// NUL), so this gives the same result; anything else returns `None` and is
/// left to [`parse_c_line`]. Returns the line and its length.
#[inline]
fn parse_simple_line(buf: &[u8]) -> Option<(Line, usize)> {
    let mut addr: u64 = 0;
    let mut p = 0;
    while p < buf.len().min(17) {
        let d = HEX_DIGIT[buf[p] as usize];
        if d == 0xff {
            break;
        }
        addr = addr << 4 | d as u64;
        p += 1;
    }
    if p == 0 || p > 16 || buf.get(p) != Some(&b' ') {
        return None;
    }
    let typ = *buf.get(p + 1)?;
    if typ == 0 || typ == b'\n' || typ >= 0x80 || buf.get(p + 2) != Some(&b' ') {
        return None;
    }
    let name_start = p + 3;
    let end = find_newline_or_nul(buf, name_start)?;
    if buf[end] != b'\n' {
        return None;
    }
    let line = Line {
        addr,
        size: 0,
        typ,
        name: (name_start, end),
    };
    Some((line, end + 1))
}

/// Index of the first newline or NUL in `buf` at or after `from`, looking
/// at 8 bytes at a time.
#[inline]
fn find_newline_or_nul(buf: &[u8], from: usize) -> Option<usize> {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // High bit set in exactly the zero bytes of `w`.
    let zero_bytes = |w: u64| !(((w & LO7) + LO7) | w | LO7);
    let mut i = from;
    while i + 8 <= buf.len() {
        let w = u64::from_le_bytes(buf[i..i + 8].try_into().unwrap());
        let m = zero_bytes(w) | zero_bytes(w ^ 0x0a0a_0a0a_0a0a_0a0a);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    buf[i..]
        .iter()
        .position(|&c| c == 0 || c == b'\n')
        .map(|k| i + k)
}

/// The rest of C's `read_symbol()` for a parsed line: length check, `_text`,
/// ignored symbols, range markers, and the new table entry.
fn add_symbol(table: &mut Table, parsed: &Line, name: &[u8], opts: &Options) {
    if name.len() >= KSYM_NAME_LEN {
        let mut msg = b"Symbol ".to_vec();
        msg.extend_from_slice(name);
        msg.extend_from_slice(
            format!(
                " too long for kallsyms ({} >= {}).\n\
                 Please increase KSYM_NAME_LEN both in kernel and kallsyms.c\n",
                name.len(),
                KSYM_NAME_LEN
            )
            .as_bytes(),
        );
        let _ = io::stderr().write_all(&msg);
        return;
    }
    if name == b"_text" {
        table.text = parsed.addr;
    }
    // Ignore most absolute/undefined (?) symbols.
    if is_ignored_symbol(name, parsed.typ) {
        return;
    }
    check_symbol_range(name, parsed.addr, &mut table.text_ranges);
    check_symbol_range(
        name,
        parsed.addr,
        std::slice::from_mut(&mut table.percpu_range),
    );

    // include the type field in the symbol name, so that it gets
    // compressed together
    let start = table.arena.len();
    if start + name.len() + 1 > u32::MAX as usize {
        fatal("input map too large");
    }
    table.slot.push(Slot {
        start: start as u32,
        len: (name.len() + 1) as u32,
    });
    table.arena.push(parsed.typ);
    table.arena.extend_from_slice(name);
    table.addr.push(parsed.addr);
    if opts.symbol_sizes {
        table.size.push(parsed.size);
    }
}

fn io_error_text(e: &io::Error) -> String {
    // perror()-style text without Rust's " (os error N)" suffix.
    let s = e.to_string();
    match s.find(" (os error") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

// ---------------------------------------------------------------------------
// shrink_table
// ---------------------------------------------------------------------------

/// C's `symbol_valid()`.
fn symbol_valid(t: &Table, i: usize, all_symbols: bool) -> bool {
    if all_symbols {
        return true;
    }
    let name = &t.sym(i)[1..];
    let addr = t.addr[i];
    // Symbols starting with __start and __stop are used to denote section
    // boundaries, and should always be included:
    if name.starts_with(b"__start_") || name.starts_with(b"__stop_") {
        return true;
    }
    if !t.text_ranges.iter().any(|r| r.contains(addr)) {
        return false;
    }
    // Corner case: discard any symbols with the same value as _etext or
    // _einittext (they can move between link passes).
    let [text, inittext] = &t.text_ranges;
    !((addr == text.end && name != text.end_sym)
        || (addr == inittext.end && name != inittext.end_sym))
}

/// Remove all the invalid symbols from the table (compacting the arena too).
fn shrink_table(t: &mut Table, all_symbols: bool) {
    let mut pos = 0;
    let mut arena_pos = 0usize;
    for i in 0..t.count() {
        if symbol_valid(t, i, all_symbols) {
            let Slot { start, len } = t.slot[i];
            let (s, l) = (start as usize, len as usize);
            t.arena.copy_within(s..s + l, arena_pos);
            t.slot[pos] = Slot {
                start: arena_pos as u32,
                len,
            };
            t.addr[pos] = t.addr[i];
            if !t.size.is_empty() {
                t.size[pos] = t.size[i];
            }
            arena_pos += l;
            pos += 1;
        }
    }
    t.arena.truncate(arena_pos);
    t.slot.truncate(pos);
    t.addr.truncate(pos);
    t.size.truncate(pos);
    t.percpu_absolute.truncate(pos);
}

// ---------------------------------------------------------------------------
// make_percpus_absolute
// ---------------------------------------------------------------------------

fn make_percpus_absolute(t: &mut Table) {
    for i in 0..t.count() {
        if t.percpu_range.contains(t.addr[i]) {
            // Keep the 'A' override for percpu symbols to ensure consistent
            // behavior compared to older versions of this tool.
            t.arena[t.slot[i].start as usize] = b'A';
            t.percpu_absolute[i] = true;
        }
    }
}

// ---------------------------------------------------------------------------
// sort_symbols
// ---------------------------------------------------------------------------

/// C's `may_be_linker_script_provide_symbol()`; `name` excludes the type.
fn may_be_linker_script_provide_symbol(name: &[u8]) -> bool {
    let len = name.len();
    if len < 8 || !name.starts_with(b"__") {
        return false;
    }
    let rest = &name[2..];
    rest.starts_with(b"start_")
        || rest.starts_with(b"stop_")
        || rest.starts_with(b"end_")
        || name.ends_with(b"_start")
        || name.ends_with(b"_end")
}

/// `compare_symbols()` order: address, non-weak before weak, non linker
/// provided before linker provided, fewer leading underscores, input order.
/// It is a total order, so the key is packed into a `u128` and sorted with
/// an unstable sort (the C tool uses `qsort`).
///
/// Faster than C: maps come from `nm -n`, already in address order, so
/// usually only the short runs of symbols at one address need sorting.
///
/// The symbols are then copied to a new arena in the sorted order (for
/// locality during compression); the old one is kept as `names`.
fn sort_symbols(t: &mut Table) {
    let n = t.count();
    let key = |i: usize| -> u128 {
        let sym = t.sym(i);
        let name = &sym[1..];
        let weak = matches!(sym[0], b'w' | b'W') as u128;
        let lsp = may_be_linker_script_provide_symbol(name) as u128;
        let underscores = name.iter().take_while(|&&c| c == b'_').count() as u128;
        ((t.addr[i] as u128) << 64) | (weak << 63) | (lsp << 62) | (underscores << 32) | i as u128
    };
    let mut order: Vec<u32> = Vec::with_capacity(n);
    if t.addr.windows(2).all(|w| w[0] <= w[1]) {
        let mut keys: Vec<u128> = Vec::new();
        let mut i = 0;
        while i < n {
            let mut end = i + 1;
            while end < n && t.addr[end] == t.addr[i] {
                end += 1;
            }
            keys.clear();
            keys.extend((i..end).map(key));
            keys.sort_unstable();
            order.extend(keys.iter().map(|&k| k as u32));
            i = end;
        }
    } else {
        let mut keys: Vec<u128> = (0..n).map(key).collect();
        keys.sort_unstable();
        order.extend(keys.iter().map(|&k| k as u32));
    }

    let mut arena = Vec::with_capacity(t.arena.len() + ARENA_SLACK);
    let mut slot = Vec::with_capacity(n);
    for &i in &order {
        let sym = t.sym(i as usize);
        slot.push(Slot {
            start: arena.len() as u32,
            len: sym.len() as u32,
        });
        arena.extend_from_slice(sym);
    }
    // Zero bytes at the end for pair_bits' word reads.
    arena.resize(arena.len() + ARENA_SLACK, 0);
    // Faster than C (which expands every compressed symbol back with
    // expand_symbol() before printing it): the uncompressed names are kept.
    t.name_start = order.iter().map(|&i| t.slot[i as usize].start).collect();
    t.name_len = slot.iter().map(|s| s.len as u16).collect();
    t.names = std::mem::replace(&mut t.arena, arena);
    t.slot = slot;
    t.addr = order.iter().map(|&i| t.addr[i as usize]).collect();
    t.percpu_absolute = order
        .iter()
        .map(|&i| t.percpu_absolute[i as usize])
        .collect();
    if !t.size.is_empty() {
        t.size = order.iter().map(|&i| t.size[i as usize]).collect();
    }
}

// ---------------------------------------------------------------------------
// record_relative_base
// ---------------------------------------------------------------------------

/// Find the minimum non-absolute symbol address (the table is sorted by
/// address, so it is the first non-absolute one).
fn record_relative_base(t: &mut Table) {
    if let Some(i) = (0..t.count()).find(|&i| !t.percpu_absolute[i]) {
        t.relative_base = t.addr[i];
    }
}

// ---------------------------------------------------------------------------
// optimize_token_table
// ---------------------------------------------------------------------------

/// The result of the compression: `best_table`/`best_table_len` of the C tool.
struct TokenTable {
    best: [[u8; 2]; 256],
    best_len: [u8; 256],
}

#[inline]
fn pair_index(a: u8, b: u8) -> usize {
    a as usize | (b as usize) << 8
}

/// `token_profit` of the C tool: occurrences of each pair `a | b << 8`.
struct PairCounts {
    /// Fixed-size, so indexing by a pair needs no bounds check.
    profit: Box<[i32; 0x10000]>,
    /// Maximum of each 256-entry block of `profit` (valid unless dirty).
    block_max: [i32; 256],
    block_dirty: [bool; 256],
}

impl PairCounts {
    /// build_initial_token_table: counts every pair of every symbol.
    fn new(t: &Table) -> Self {
        let mut profit: Box<[i32; 0x10000]> = vec![0; 0x10000].try_into().unwrap();
        for i in 0..t.count() {
            for w in t.sym(i).windows(2) {
                profit[pair_index(w[0], w[1])] += 1;
            }
        }
        PairCounts {
            profit,
            block_max: [0; 256],
            block_dirty: [true; 256],
        }
    }

    /// find_best_token: the first pair with the maximum profit, if any > 0.
    /// (C scans all 65536 counts; here only blocks whose counts changed
    /// since the last call are rescanned.)
    fn find_best_token(&mut self) -> Option<usize> {
        for blk in 0..256 {
            if self.block_dirty[blk] {
                let block = &self.profit[blk << 8..(blk + 1) << 8];
                self.block_max[blk] = block.iter().copied().fold(i32::MIN, i32::max);
                self.block_dirty[blk] = false;
            }
        }
        let max = self.block_max.iter().copied().fold(i32::MIN, i32::max);
        if max <= 0 {
            return None;
        }
        let blk = self.block_max.iter().position(|&m| m == max)?;
        let pos = self.profit[blk << 8..(blk + 1) << 8]
            .iter()
            .position(|&v| v == max)?;
        Some(blk << 8 | pos)
    }

    #[inline]
    fn add(&mut self, a: u8, b: u8, n: i32) {
        self.profit[pair_index(a, b)] += n;
        self.block_dirty[b as usize] = true;
    }
}

/// Greedy byte-pair compression, with exactly the C tool's result:
/// every byte used in a symbol is a 1-byte token; free slots from 255 down
/// get the most frequent adjacent pair (ties → lowest `a | b << 8`), replaced
/// left to right without overlap in every symbol.
///
/// Faster than C: the C tool compares every symbol byte by byte for each of
/// up to 256 tokens and re-counts all pairs of every symbol it changes.
/// Here each step scans the whole (packed) arena for the pair 32 bytes at a
/// time ([`find_pair`]), so only the symbols that contain it are looked at,
/// and the counts are updated only for the pairs that change around each
/// replacement, which gives the same counts as C's `forget_symbol` +
/// `learn_symbol`.
fn optimize_token_table(t: &mut Table) -> TokenTable {
    let n = t.count();
    let mut tt = TokenTable {
        best: [[0; 2]; 256],
        best_len: [0; 256],
    };

    // insert_real_symbols_in_table
    for i in 0..n {
        for &c in t.sym(i) {
            tt.best[c as usize][0] = c;
            tt.best_len[c as usize] = 1;
        }
    }
    let mut counts = PairCounts::new(t);
    let mut map = SymbolMap::new(t);
    let mut live = t.arena.len() - ARENA_SLACK;

    // optimize_result: using the '\0' symbol last ...
    for idx in (0..256usize).rev() {
        if tt.best_len[idx] != 0 {
            continue;
        }
        let Some(best) = counts.find_best_token() else {
            break;
        };
        let (a, b) = ((best & 0xff) as u8, (best >> 8) as u8);
        tt.best_len[idx] = 2;
        tt.best[idx] = [a, b];
        live -= compress_symbols(t, &map, &mut counts, a, b, idx as u8);
        // Faster than C: keep the symbols densely packed as they shrink, so
        // that the scans read little else.
        if live < (t.arena.len() - ARENA_SLACK) / 8 * 7 {
            t.compact();
            map = SymbolMap::new(t);
        }
    }
    tt
}

/// Zero bytes after the last symbol in the arena (for the 33-byte reads of
/// find_pair and pair_bits).
const ARENA_SLACK: usize = 40;

/// Positions `p` in `base..base + 32` with `sym[p] == a && sym[p + 1] == b`
/// and `p + 1 < len`, as bit `p - base` of the result. Reads
/// `sym[base..base + 33]`. A fixed amount of work, so that the length of a
/// symbol costs no mispredicted branches.
#[inline(always)]
fn pair_bits(sym: &[u8], base: usize, len: usize, a: u8, b: u8) -> u64 {
    let bytes: &[u8; 33] = sym[base..base + 33].try_into().unwrap();
    // Pairs starting at base .. base + valid are inside the symbol.
    let valid = (len - 1 - base).min(32);
    pair_bits_32(bytes, a, b) & ((1u64 << valid) - 1)
}

/// `pair_bits` without the length limit, with SSE2 (always present on
/// x86_64): two 16-byte compares for `a`, two for `b` one byte further.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pair_bits_32(bytes: &[u8; 33], a: u8, b: u8) -> u64 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned loads read
    // bytes[0..32] and bytes[1..33], inside the array.
    unsafe {
        let p = bytes.as_ptr();
        let load = |i: usize| _mm_loadu_si128(p.add(i) as *const __m128i);
        let (va, vb) = (_mm_set1_epi8(a as i8), _mm_set1_epi8(b as i8));
        let half = |i: usize| {
            let m = _mm_and_si128(_mm_cmpeq_epi8(load(i), va), _mm_cmpeq_epi8(load(i + 1), vb));
            _mm_movemask_epi8(m) as u32 as u64
        };
        half(0) | half(16) << 16
    }
}

/// Portable `pair_bits_32` (SWAR, 8 positions per step): an exact zero-byte
/// test on `(w ^ aaaa…) | (w' ^ bbbb…)`, where `w'` is the word `w` shifted
/// by one byte, gives the high bit of each matching byte, and a
/// multiplication gathers those 8 bits into one byte.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn pair_bits_32(bytes: &[u8; 33], a: u8, b: u8) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let (pa, pb) = (
        0x0101_0101_0101_0101 * a as u64,
        0x0101_0101_0101_0101 * b as u64,
    );
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let mut bits = 0;
    for step in 0..4 {
        let i = step * 8;
        let z = (word(i) ^ pa) | (word(i + 1) ^ pb);
        let high = !(((z & LO7) + LO7) | z | LO7);
        bits |= ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) << i;
    }
    bits
}

/// Finds the symbol that holds an arena position (its own bytes or the
/// ones it no longer uses, up to the next symbol's start). Symbols lie in
/// the arena in table order; only `Table::compact` moves them. For every
/// 32-byte block of the arena: the symbol that holds its first byte.
struct SymbolMap {
    block_sym: Vec<u32>,
}

impl SymbolMap {
    const BLOCK: usize = 32;

    fn new(t: &Table) -> Self {
        let blocks = t.arena.len().div_ceil(Self::BLOCK);
        let mut block_sym = Vec::with_capacity(blocks);
        let mut s = 0;
        for k in 0..blocks {
            while s + 1 < t.count() && t.slot[s + 1].start as usize <= k * Self::BLOCK {
                s += 1;
            }
            block_sym.push(s as u32);
        }
        SymbolMap { block_sym }
    }

    /// The symbol whose part of the arena holds `pos`.
    #[inline]
    fn symbol_at(&self, slot: &[Slot], pos: usize) -> usize {
        let mut s = self.block_sym[pos / Self::BLOCK] as usize;
        while s + 1 < slot.len() && slot[s + 1].start as usize <= pos {
            s += 1;
        }
        s
    }
}

/// Replaces pair `(a, b)` by token `x` in every symbol that contains it;
/// returns by how many bytes the symbols shrank.
fn compress_symbols(
    t: &mut Table,
    map: &SymbolMap,
    counts: &mut PairCounts,
    a: u8,
    b: u8,
    x: u8,
) -> usize {
    let mut removed = 0;
    // Symbols lie in the arena in table order, each followed by the bytes
    // it no longer uses; pairs found there or across two symbols are not
    // in a symbol and are skipped. After the first pair found in a symbol
    // (replace_pair handles the others), the scan goes on at the next one.
    let end = t.arena.len() - ARENA_SLACK;
    let mut from = 0;
    while let Some(found) = find_pair(&t.arena, from, end, a, b) {
        let s = map.symbol_at(&t.slot, found);
        // Most hits are in the early steps, where the next ones are close
        // by: fetch the map and slot entries about 2 KB ahead of use.
        prefetch(&map.block_sym, (found + 2048) / SymbolMap::BLOCK);
        prefetch(&t.slot, s + 64);
        let Slot { start, len } = t.slot[s];
        let (st, len) = (start as usize, len as usize);
        if found + 1 < st + len {
            let w = replace_pair(&mut t.arena[st..], found - st, len, counts, a, b, x);
            removed += len - w;
            t.slot[s].len = w as u32;
        }
        from = t.slot.get(s + 1).map_or(end, |next| next.start as usize);
    }
    removed
}

/// The first position `p >= from` with `buf[p] == a && buf[p + 1] == b`,
/// if it is below `end`. Reads up to `buf[end + 32]`.
#[inline]
fn find_pair(buf: &[u8], from: usize, end: usize, a: u8, b: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { find_pair_avx2(buf, from, end, a, b) };
    }
    let mut p = from;
    while p < end {
        let bits = pair_bits_32(buf[p..p + 33].try_into().unwrap(), a, b);
        if bits != 0 {
            let q = p + bits.trailing_zeros() as usize;
            return (q < end).then_some(q);
        }
        p += 32;
    }
    None
}

/// `find_pair` with AVX2: 32 positions per compare of `a` and of `b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn find_pair_avx2(buf: &[u8], from: usize, end: usize, a: u8, b: u8) -> Option<usize> {
    use std::arch::x86_64::*;
    let mut p = from;
    while p < end {
        let bytes: &[u8; 33] = buf[p..p + 33].try_into().unwrap();
        // SAFETY: the caller checked for AVX2; the unaligned loads read
        // bytes[0..32] and bytes[1..33].
        let bits = unsafe {
            let at_a = _mm256_loadu_si256(bytes.as_ptr() as *const __m256i);
            let at_b = _mm256_loadu_si256(bytes.as_ptr().add(1) as *const __m256i);
            let is_a = _mm256_cmpeq_epi8(at_a, _mm256_set1_epi8(a as i8));
            let is_b = _mm256_cmpeq_epi8(at_b, _mm256_set1_epi8(b as i8));
            _mm256_movemask_epi8(_mm256_and_si256(is_a, is_b)) as u32
        };
        if bits != 0 {
            let q = p + bits.trailing_zeros() as usize;
            return (q < end).then_some(q);
        }
        p += 32;
    }
    None
}

/// Replaces pair `(a, b)` by token `x` in the symbol `sym[..len]`, whose
/// first occurrence is at `first`; returns the new length. The slice
/// extends into the following symbols (or the arena slack) so that whole
/// words can be read.
///
/// Replace left to right, without overlap, and update the counts of exactly
/// the pairs that change (same result as C's forget_symbol + learn_symbol
/// of the whole symbol). All writes go to positions at or before the
/// occurrence being handled, so the masks (computed ahead) and the bytes
/// after it are still the original ones. Faster than C: all occurrences in
/// 32 positions are found at once (see pair_bits), and runs between them
/// are moved with memmove.
#[inline]
fn replace_pair(
    sym: &mut [u8],
    first: usize,
    len: usize,
    counts: &mut PairCounts,
    a: u8,
    b: u8,
    x: u8,
) -> usize {
    let mut r = 0; // read position: end of the last occurrence
    let mut w = 0; // write position
    let mut replaced = 0;
    let mut base = first;
    while base + 1 < len {
        let mut m = pair_bits(sym, base, len, a, b);
        while m != 0 {
            let p = base + m.trailing_zeros() as usize;
            m &= m - 1;
            if p < r {
                continue; // overlaps the previous occurrence ("aaa")
            }
            if p > r {
                // Copy the run before the occurrence; its first char
                // follows the previous token: (x, c) is a new pair.
                if r > 0 {
                    counts.add(x, sym[r], 1);
                }
                if w != r {
                    sym.copy_within(r..p, w);
                }
                w += p - r;
                // old (c, a) -> new (c, x)
                counts.add(sym[p - 1], a, -1);
            }
            replaced += 1;
            if p + 2 < len {
                counts.add(b, sym[p + 2], -1);
            }
            if w > 0 {
                counts.add(sym[w - 1], x, 1);
            }
            sym[w] = x;
            w += 1;
            r = p + 2;
        }
        base += 32;
    }
    if r < len {
        counts.add(x, sym[r], 1);
        sym.copy_within(r..len, w);
        w += len - r;
    }
    counts.add(a, b, -replaced);
    w
}

/// Expansion of every token slot (C's recursive `expand_symbol()` on
/// `best_table[i]`): real bytes expand to themselves, empty slots to "".
fn expand_tokens(tt: &TokenTable) -> Vec<Vec<u8>> {
    let mut exp: Vec<Vec<u8>> = vec![Vec::new(); 256];
    for (c, e) in exp.iter_mut().enumerate() {
        if tt.best_len[c] == 1 && tt.best[c][0] as usize == c {
            *e = vec![c as u8];
        }
    }
    // Tokens only refer to real bytes or to slots filled before them, i.e.
    // higher slot numbers.
    for c in (0..256).rev() {
        if tt.best_len[c] == 2 {
            let [x, y] = tt.best[c];
            let mut e = exp[x as usize].clone();
            e.extend_from_slice(&exp[y as usize]);
            exp[c] = e;
        }
    }
    exp
}

// ---------------------------------------------------------------------------
// write_src
// ---------------------------------------------------------------------------

/// Output buffer that is flushed to stdout in large chunks.
struct Out {
    buf: Vec<u8>,
    stdout: io::StdoutLock<'static>,
}

impl Out {
    /// Faster than C's stdio buffer (4 KiB): the ~45 MB of a distro-size
    /// map go out in 256 KiB write(2) calls (measured a few ms faster than
    /// 64 KiB ones).
    const CHUNK: usize = 1 << 18;

    fn new() -> Self {
        Out {
            buf: Vec::with_capacity(Self::CHUNK + 4096),
            stdout: io::stdout().lock(),
        }
    }

    #[inline]
    fn s(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    #[inline]
    fn maybe_flush(&mut self) {
        if self.buf.len() >= Self::CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self
            .stdout
            .write_all(&self.buf)
            .and_then(|()| self.stdout.flush())
        {
            fatal(&format!("write error: {}", io_error_text(&e)));
        }
        self.buf.clear();
    }

    /// printf("%u")
    fn dec(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&tmp[i..]);
    }

    /// printf("%#x") / printf("%#llx"): "0" for zero, else "0x" + lowercase.
    fn alt_hex(&mut self, v: u64) {
        if v == 0 {
            self.buf.push(b'0');
            return;
        }
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        let mut v = v;
        while v != 0 {
            i -= 1;
            tmp[i] = HEX[(v & 15) as usize];
            v >>= 4;
        }
        self.buf.extend_from_slice(b"0x");
        self.buf.extend_from_slice(&tmp[i..]);
    }

    /// printf("0x%02x")
    fn byte_hex(&mut self, b: u8) {
        self.buf
            .extend_from_slice(&[b'0', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }

    /// `len` bytes of `buf` from `start`, copied in 16-byte blocks (`buf`
    /// needs 15 readable bytes past the text).
    #[inline]
    fn text(&mut self, buf: &[u8], (start, len): (usize, usize)) {
        let end = start + len;
        let mut p = start;
        while p < end {
            let mut block = [0u8; 16];
            block.copy_from_slice(&buf[p..p + 16]);
            self.buf.extend_from_slice(&block);
            p += 16;
        }
        self.buf.truncate(self.buf.len() - (p - end));
    }

    /// printf("%s") of a C string: stops at the first NUL.
    fn cstr(&mut self, s: &[u8]) {
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        self.buf.extend_from_slice(&s[..end]);
    }

    fn label(&mut self, label: &str) {
        self.s(b".globl ");
        self.s(label.as_bytes());
        self.s(b"\n\tALGN\n");
        self.s(label.as_bytes());
        self.s(b":\n");
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `", 0x%02x"` for every byte value.
const BYTE_ITEMS: [[u8; 6]; 256] = {
    let mut t = [[0u8; 6]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [b',', b' ', b'0', b'x', HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// The value stored in `kallsyms_offsets` for symbol `i`, or the C tool's
/// error message when it does not fit.
fn symbol_offset(t: &Table, i: usize, absolute_percpu: bool) -> Result<u32, String> {
    let addr = t.addr[i];
    let (offset, overflow) = if !absolute_percpu {
        let o = addr.wrapping_sub(t.relative_base) as i64;
        (o, o < 0 || o > u32::MAX as i64)
    } else if t.percpu_absolute[i] {
        let o = addr as i64;
        (o, o < 0 || o > i32::MAX as i64)
    } else {
        let o = t.relative_base.wrapping_sub(addr).wrapping_sub(1) as i64;
        (o, o < i32::MIN as i64 || o >= 0)
    };
    if overflow {
        return Err(format!(
            "kallsyms failure: {} symbol value {} out of range in relative mode",
            if t.percpu_absolute[i] {
                "absolute"
            } else {
                "relative"
            },
            if addr == 0 {
                "0".to_string()
            } else {
                format!("{addr:#x}")
            }
        ));
    }
    Ok(offset as u32)
}

/// The `kallsyms_sizes` table: one entry per symbol, in the same order as
/// `kallsyms_offsets`.
///
/// Encoding (for now): one plain 32-bit `.long` per symbol holding the
/// symbol's size in bytes as printed by `nm -S` (0 for symbols without a
/// size column, e.g. zero-size or linker-script symbols), formatted like
/// `kallsyms_offsets`: `\t.long\t%#x\t/* <type><name> */`. A symbol larger
/// than 4 GiB - 1 is rejected before any output is written.
/// This function is the only writer of the table, so a compact encoding
/// can replace it in one place. (`names` is laid out as for [`Out::text`].)
fn write_sizes_table(
    out: &mut Out,
    sizes: &[u64],
    names: &[u8],
    name_start: &[u32],
    name_len: &[u16],
) {
    out.label("kallsyms_sizes");
    for (i, &size) in sizes.iter().enumerate() {
        out.s(b"\t.long\t");
        out.alt_hex(size);
        out.s(b"\t/* ");
        out.text(names, (name_start[i] as usize, name_len[i] as usize));
        out.s(b" */\n");
        out.maybe_flush();
    }
    out.s(b"\n");
}

/// The `KSZ4` compact size tables (patches/6.12/SIZES-FORMAT.md), written
/// instead of `kallsyms_sizes` with `--compact-sizes`: a 4-bit code per
/// symbol meaning "ends `gaps[c]` bytes before the next higher address"
/// (14 per-build gap values), "size 0", or "escape" into `kallsyms_size_exc`,
/// with a rank every 256 symbols so an escape is found in O(256).
/// `addrs` are the addresses the kernel computes for each symbol, in table
/// order; `sizes` the `nm -S` sizes (0 when absent).
fn ksz4_tables(addrs: &[u64], sizes: &[u64]) -> (Vec<u8>, [u32; 14], Vec<u32>, Vec<u32>) {
    const NGAPS: usize = 14;
    const ZERO: u8 = 14;
    const ESC: u8 = 15;
    let n = addrs.len();
    // next(i): the next strictly higher address after symbol i.
    let mut next: Vec<Option<u64>> = vec![None; n];
    let mut following: Option<u64> = None;
    let mut i = n;
    while i > 0 {
        let start = {
            let mut j = i - 1;
            while j > 0 && addrs[j - 1] == addrs[i - 1] {
                j -= 1;
            }
            j
        };
        next[start..i].fill(following);
        following = Some(addrs[start]);
        i = start;
    }
    let gap = |i: usize| -> Option<u64> {
        let nx = next[i]?;
        let span = nx - addrs[i];
        (sizes[i] > 0 && span >= sizes[i]).then(|| span - sizes[i])
    };
    // Rule 1: the 14 most frequent gaps, ties by value.
    let mut freq: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for i in 0..n {
        if let Some(g) = gap(i) {
            *freq.entry(g).or_default() += 1;
        }
    }
    let mut by_freq: Vec<(u64, usize)> = freq.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut gaps = [0u32; NGAPS];
    for (slot, (g, _)) in gaps
        .iter_mut()
        .zip(by_freq.iter().filter(|(g, _)| *g <= u64::from(u32::MAX)))
    {
        *slot = *g as u32;
    }
    let used = by_freq.len().min(NGAPS);
    // Rule 2: codes.
    let mut codes = vec![0u8; n.div_ceil(2)];
    let mut rank = Vec::with_capacity(n.div_ceil(256));
    let mut exc = Vec::new();
    for i in 0..n {
        if i % 256 == 0 {
            rank.push(exc.len() as u32);
        }
        let code = if sizes[i] == 0 {
            ZERO
        } else {
            match gap(i).and_then(|g| gaps[..used].iter().position(|&x| u64::from(x) == g)) {
                Some(c) => c as u8,
                None => {
                    exc.push(sizes[i] as u32);
                    ESC
                }
            }
        };
        codes[i / 2] |= if i % 2 == 0 { code } else { code << 4 };
    }
    (codes, gaps, rank, exc)
}

/// Writes the KSZ4 tables (`kallsyms_size_codes`, `_gaps`, `_rank`, `_exc`)
/// in place of `kallsyms_sizes`; the format is specified in the kernel
/// series (`patches/6.12/SIZES-FORMAT.md`) and read by
/// `kallsyms_sym_size()`. About half a byte per symbol instead of four.
fn write_compact_sizes_tables(out: &mut Out, addrs: &[u64], sizes: &[u64]) {
    let (codes, gaps, rank, exc) = ksz4_tables(addrs, sizes);
    out.label("kallsyms_size_codes");
    for b in &codes {
        out.s(b"\t.byte\t");
        out.alt_hex(u64::from(*b));
        out.s(b"\n");
        out.maybe_flush();
    }
    out.s(b"\n");
    for (label, values) in [
        ("kallsyms_size_gaps", &gaps[..]),
        ("kallsyms_size_rank", &rank[..]),
        ("kallsyms_size_exc", &exc[..]),
    ] {
        out.label(label);
        for v in values {
            out.s(b"\t.long\t");
            out.alt_hex(u64::from(*v));
            out.s(b"\n");
            out.maybe_flush();
        }
        out.s(b"\n");
    }
}

/// C's `sort_symbols_by_name()`: symbol positions ordered by name
/// (`strcmp`), then address, then position; the table is in address order,
/// so that is name, then position.
///
/// Faster than C's qsort + strcmp: an MSD sort on 28-byte chunks of the
/// names packed with the position into a pair of `u128`s, so that nearly
/// all work is plain integer sorting; only runs with an equal chunk go one
/// level deeper. (Kernel names often share long prefixes, `__pfx_` and
/// subsystem names, hence the long chunk.)
///
/// `key(i)` is the (start, length) of symbol `i`'s name in `buf`, which must
/// have 28 readable bytes after every name.
fn sort_symbols_by_name(n: usize, buf: &[u8], key: impl Fn(usize) -> (usize, usize)) -> Vec<u32> {
    const CHUNK: usize = 28;
    // Bytes `depth * CHUNK ..` of the name (zero padded), then the position.
    let chunk = |i: usize, depth: usize| -> (u128, u128) {
        let (ks, kl) = key(i);
        let from = (depth * CHUNK).min(kl);
        let rem = (kl - from).min(CHUNK);
        let mut b = [0u8; 32];
        b[..CHUNK].copy_from_slice(&buf[ks + from..ks + from + CHUNK]);
        b[rem..].fill(0);
        let hi = u128::from_be_bytes(b[..16].try_into().unwrap());
        let lo = u128::from_be_bytes(b[16..].try_into().unwrap());
        (hi, lo | i as u128)
    };
    let pos = |v: &(u128, u128)| v.1 as u32 as usize;
    let mut order: Vec<(u128, u128)> = (0..n).map(|i| chunk(i, 0)).collect();
    order.sort_unstable();
    // Runs whose elements are sorted by their chunk at `depth`.
    let mut stack = vec![(0usize, n, 0usize)];
    while let Some((start, end, depth)) = stack.pop() {
        let mut run = start;
        while run < end {
            let (hi, lo) = (order[run].0, order[run].1 >> 32);
            let mut e = run + 1;
            while e < end && order[e].0 == hi && order[e].1 >> 32 == lo {
                e += 1;
            }
            // Equal chunks and a key that ends inside it (zero padding; names
            // contain no NUL) mean identical names: C then orders by address,
            // then position. The table is in address order, so that is the
            // position order the run already has.
            if e - run > 1 && key(pos(&order[run])).1 >= (depth + 1) * CHUNK {
                for v in &mut order[run..e] {
                    *v = chunk(pos(v), depth + 1);
                }
                order[run..e].sort_unstable();
                stack.push((run, e, depth + 1));
            }
            run = e;
        }
    }
    order.iter().map(|v| pos(v) as u32).collect()
}

/// How far ahead (in name order) `write_src` prefetches the names, and the
/// per-symbol entries needed to locate them.
const PREFETCH_DISTANCE: usize = 16;
const PREFETCH_INDEX_DISTANCE: usize = 48;

/// Hints the CPU to fetch `buf[i]` into the cache (no effect on results).
#[inline(always)]
fn prefetch<T>(buf: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if i < buf.len() {
        // SAFETY: prefetching never faults; the pointer is in bounds anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch(
                buf.as_ptr().add(i) as *const i8,
                std::arch::x86_64::_MM_HINT_T0,
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, i);
}

/// Emits the assembler source. Unlike the C tool, every fatal condition is
/// checked before the first byte is written, and output is streamed in
/// large chunks.
fn write_src(t: &mut Table, tt: &TokenTable, opts: &Options) {
    let n = t.count();

    // Fatal checks first (the C tool exits half way through its output).
    for i in 0..n {
        // There cannot be any symbol of length zero; only lengths that fit
        // in up-to-two-byte ULEB128 are supported (both impossible here).
        if t.slot[i].len == 0 {
            fatal("kallsyms failure: unexpected zero symbol length");
        }
        if t.slot[i].len > 0x3FFF {
            fatal("kallsyms failure: unexpected huge symbol length");
        }
    }
    let mut offsets: Vec<u32> = Vec::with_capacity(n);
    for i in 0..n {
        match symbol_offset(t, i, opts.absolute_percpu) {
            Ok(o) => offsets.push(o),
            Err(msg) => {
                eprintln!("{msg}");
                exit(1);
            }
        }
    }
    if opts.symbol_sizes {
        if let Some(i) = t.size.iter().position(|&s| s > u32::MAX as u64) {
            fatal(&format!(
                "symbol {} size {:#x} does not fit in kallsyms_sizes",
                String::from_utf8_lossy(&t.sym(i)[1..]),
                t.size[i]
            ));
        }
    }

    // The original names (C: expand_symbol + strcpy). `name_len` is the C
    // string length (printf "%s" stops at a NUL, which can only be a NUL
    // type byte at the start).
    let exp = expand_tokens(tt);
    let mut names = std::mem::take(&mut t.names);
    let name_start = &t.name_start[..n];
    let name_len: Vec<u16> = (0..n)
        .map(|i| match names[name_start[i] as usize] {
            0 => 0,
            _ => t.name_len[i],
        })
        .collect();
    // Sort keys of symbols with a NUL type byte (see below) go after the
    // names; then 32 bytes of slack for word-sized copies.
    let mut nul_type_keys: Vec<(u32, u32, u16)> = Vec::new();
    for (i, _) in name_len.iter().enumerate().filter(|(_, &l)| l == 0) {
        let rest = &t.sym(i)[1..];
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        nul_type_keys.push((i as u32, names.len() as u32, end as u16));
        names.extend_from_slice(&rest[..end]);
    }
    names.resize(names.len() + 32, 0);
    let names = names;
    let name = |i: usize| -> (usize, usize) { (name_start[i] as usize, name_len[i] as usize) };

    let mut out = Out::new();
    out.s(b"#include <asm/bitsperlong.h>\n\
            #if BITS_PER_LONG == 64\n\
            #define PTR .quad\n\
            #define ALGN .balign 8\n\
            #else\n\
            #define PTR .long\n\
            #define ALGN .balign 4\n\
            #endif\n");
    out.s(b"\t.section .rodata, \"a\"\n");

    out.label("kallsyms_num_syms");
    out.s(b"\t.long\t");
    out.dec(n as u32 as u64);
    out.s(b"\n\n");

    // table of offset markers, that give the offset in the compressed
    // stream every 256 symbols
    let mut markers: Vec<u32> = Vec::with_capacity(n.div_ceil(256));
    out.label("kallsyms_names");
    let mut off: u32 = 0;
    for i in 0..n {
        if i & 0xFF == 0 {
            markers.push(off);
        }
        let len = t.slot[i].len;
        // Encode length with ULEB128.
        if len <= 0x7F {
            out.s(b"\t.byte ");
            out.byte_hex(len as u8);
            off = off.wrapping_add(len + 1);
        } else {
            out.s(b"\t.byte ");
            out.byte_hex(((len & 0x7F) | 0x80) as u8);
            out.s(b", ");
            out.byte_hex(((len >> 7) & 0x7F) as u8);
            off = off.wrapping_add(len + 2);
        }
        let sym = t.sym(i);
        out.buf.reserve(sym.len() * 6);
        for &c in sym {
            out.buf.extend_from_slice(&BYTE_ITEMS[c as usize]);
        }
        out.s(b"\t/* ");
        out.text(&names, name(i));
        out.s(b" */\n");
        out.maybe_flush();
    }
    out.s(b"\n");

    out.label("kallsyms_markers");
    for &m in &markers {
        out.s(b"\t.long\t");
        out.dec(m as u64);
        out.s(b"\n");
    }
    out.s(b"\n");
    drop(markers);

    out.label("kallsyms_token_table");
    let mut best_idx = [0u32; 256];
    let mut off: u32 = 0;
    for (i, e) in exp.iter().enumerate() {
        best_idx[i] = off;
        out.s(b"\t.asciz\t\"");
        out.cstr(e);
        out.s(b"\"\n");
        let slen = e.iter().position(|&c| c == 0).unwrap_or(e.len());
        off = off.wrapping_add(slen as u32 + 1);
    }
    out.s(b"\n");

    out.label("kallsyms_token_index");
    for &v in &best_idx {
        out.s(b"\t.short\t");
        out.dec(v as u64); // "%d" of a value < 2^31
        out.s(b"\n");
    }
    out.s(b"\n");
    out.maybe_flush();

    out.label("kallsyms_offsets");
    for (i, &o) in offsets.iter().enumerate() {
        out.s(b"\t.long\t");
        out.alt_hex(o as u64);
        out.s(b"\t/* ");
        out.text(&names, name(i));
        out.s(b" */\n");
        out.maybe_flush();
    }
    out.s(b"\n");
    drop(offsets);

    out.label("kallsyms_relative_base");
    // Provide proper symbols relocatability by their '_text' relativeness.
    if t.text <= t.relative_base {
        out.s(b"\tPTR\t_text + ");
        out.alt_hex(t.relative_base - t.text);
    } else {
        out.s(b"\tPTR\t_text - ");
        out.alt_hex(t.text - t.relative_base);
    }
    out.s(b"\n\n");

    if opts.symbol_sizes && opts.compact_sizes {
        write_compact_sizes_tables(&mut out, &t.addr, &t.size);
    } else if opts.symbol_sizes {
        write_sizes_table(&mut out, &t.size, &names, name_start, &name_len);
    }

    // sort_symbols_by_name (C: compare_names on the restored names, then
    // address, then position in the address-sorted table).
    //
    // C quirk replicated: the name is restored with strcpy(), so for a
    // symbol whose type byte is NUL only that NUL is copied, and the bytes
    // compared after it are still the compressed ones.
    let key = |i: usize| -> (usize, usize) {
        let (s, l) = name(i);
        if l > 0 {
            return (s + 1, l - 1); // the shown name stops before any NUL
        }
        let k = nul_type_keys
            .binary_search_by_key(&(i as u32), |e| e.0)
            .unwrap_or(0);
        let (_, ks, kl) = nul_type_keys[k];
        (ks as usize, kl as usize)
    };
    let order = sort_symbols_by_name(n, &names, key);
    out.label("kallsyms_seqs_of_names");
    for (k, &i) in order.iter().enumerate() {
        // Name order is random in memory: prefetch ahead of use.
        if let Some(&j) = order.get(k + PREFETCH_INDEX_DISTANCE) {
            prefetch(name_start, j as usize);
            prefetch(&name_len, j as usize);
        }
        if let Some(&j) = order.get(k + PREFETCH_DISTANCE) {
            prefetch(&names, name_start[j as usize] as usize);
        }
        out.s(b"\t.byte ");
        out.byte_hex((i >> 16) as u8);
        out.s(b", ");
        out.byte_hex((i >> 8) as u8);
        out.s(b", ");
        out.byte_hex(i as u8);
        out.s(b"\t/* ");
        out.text(&names, name(i as usize));
        out.s(b" */\n");
        out.maybe_flush();
    }
    out.s(b"\n");
    out.flush();
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let opts = parse_args(&args);

    let mut table = read_map(&opts.input, &opts);
    shrink_table(&mut table, opts.all_symbols);
    if opts.absolute_percpu {
        make_percpus_absolute(&mut table);
    }
    sort_symbols(&mut table);
    record_relative_base(&mut table);
    let tokens = optimize_token_table(&mut table);
    write_src(&mut table, &tokens, &opts);
}
