// SPDX-License-Identifier: GPL-2.0-only
//! Stage 1, `read_map()`/`read_symbol()` of `scripts/kallsyms.c`: the map
//! (`nm -n` output, optionally with `nm -S` sizes) into a [`Table`].

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::process::exit;

use crate::out::HEX;
use crate::table::{AddrRange, Slot, Table};
use crate::{fatal, io_error_text, Options};

/// Same constant as the C tool (and `include/linux/kallsyms.h`): names of
/// `KSYM_NAME_LEN` bytes or more are rejected with a warning and skipped.
const KSYM_NAME_LEN: usize = 512;

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
    // C: `type == '\0' || !isascii(type) || *p++ != ' '` is a format
    // error (a NUL type inside the line too, unlike the 3-column form's).
    let typ = get(p);
    if p >= line_len || typ == 0 || typ >= 0x80 || get(p + 1) != b' ' {
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
pub(crate) fn read_map(path: &OsString, opts: &Options) -> Table {
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
