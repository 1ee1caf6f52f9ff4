// SPDX-License-Identifier: GPL-2.0-only
//! The output buffer every table writer shares ([`crate::write_src`],
//! [`crate::sizes`]): `printf`'s formats as `scripts/kallsyms.c` uses
//! them, written to stdout in large chunks.

use std::io::{self, Write};

use crate::{fatal, io_error_text, Format};

/// Output buffer that is flushed to stdout in large chunks.
pub(crate) struct Out {
    pub(crate) buf: Vec<u8>,
    stdout: io::StdoutLock<'static>,
    format: Format,
}

impl Out {
    /// Faster than C's stdio buffer (4 KiB): the ~45 MB of a distro-size
    /// map go out in 256 KiB write(2) calls (measured a few ms faster than
    /// 64 KiB ones).
    const CHUNK: usize = 1 << 18;

    pub(crate) fn new(format: Format) -> Self {
        Out {
            buf: Vec::with_capacity(Self::CHUNK + 4096),
            stdout: io::stdout().lock(),
            format,
        }
    }

    #[inline]
    pub(crate) fn s(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    #[inline]
    pub(crate) fn maybe_flush(&mut self) {
        if self.buf.len() >= Self::CHUNK {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
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
    pub(crate) fn dec(&mut self, mut v: u64) {
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
    pub(crate) fn alt_hex(&mut self, v: u64) {
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
    pub(crate) fn byte_hex(&mut self, b: u8) {
        self.buf
            .extend_from_slice(&[b'0', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }

    /// `len` bytes of `buf` from `start`, copied in 16-byte blocks (`buf`
    /// needs 15 readable bytes past the text).
    #[inline]
    pub(crate) fn text(&mut self, buf: &[u8], (start, len): (usize, usize)) {
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
    pub(crate) fn cstr(&mut self, s: &[u8]) {
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        self.buf.extend_from_slice(&s[..end]);
    }

    /// `"\t/* %s */\n"`, the symbol comment that ends a table line (the
    /// name laid out as for [`Out::text`]); a chunk may go out after it.
    #[inline]
    pub(crate) fn name_comment(&mut self, buf: &[u8], name: (usize, usize)) {
        self.s(b"\t/* ");
        self.text(buf, name);
        self.s(b" */\n");
        self.maybe_flush();
    }

    /// C's `output_label()`.
    pub(crate) fn label(&mut self, label: &str) {
        self.s(b".globl ");
        self.s(label.as_bytes());
        self.s(match self.format {
            Format::Linux6_12 => b"\n\tALGN\n",
            Format::Linux7_3 => b"\n\t.balign 4\n",
        });
        self.s(label.as_bytes());
        self.s(b":\n");
    }

    /// The end of table `label`: 7.3 gives it an ELF size, 6.12 does not.
    pub(crate) fn end_table(&mut self, label: &str) {
        if self.format == Format::Linux7_3 {
            self.s(b".size ");
            self.s(label.as_bytes());
            self.s(b", . - ");
            self.s(label.as_bytes());
            self.s(b"\n");
        }
    }
}

/// Lowercase hex digits, as `printf("%x")` writes them (and the map's
/// addresses are read with).
pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";
