//! The expectation files under [`crate::EXPECT_DIR`], as types: one record
//! type per file with its encoder and decoder, used by the host (which
//! writes them) and the guest (which reads them), so a format change is one
//! edit here and a drift fails to compile or fails the round-trip tests.
//! Text, one record per line, fields separated by one space, addresses and
//! sizes in lowercase hex without `0x`; the last field of a record may hold
//! spaces where the record says so.

use std::fmt::Write as _;

/// One line of an expectation file.
pub trait Line<'a>: Sized {
    /// The file's path in the guest.
    const PATH: &'static str;
    /// Appends the record's line (without the newline) to `out`.
    fn write(&self, out: &mut String);
    /// Parses one line; the error says what is wrong (the caller adds
    /// the file and line number).
    fn parse(line: &'a str) -> Result<Self, String>;
}

/// The file's text for `records`.
pub fn encode<'a, T: Line<'a>>(records: &[T]) -> String {
    let mut out = String::new();
    for r in records {
        r.write(&mut out);
        out.push('\n');
    }
    out
}

/// Appends one record's line to `out`.
pub fn push<'a, T: Line<'a>>(out: &mut String, record: &T) {
    record.write(out);
    out.push('\n');
}

/// Every record of `text`; the first bad line fails with
/// `PATH:LINE: why: text`.
pub fn decode<'a, T: Line<'a>>(text: &'a str) -> Result<Vec<T>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| T::parse(l).map_err(|e| format!("{}:{}: {e}: {l:?}", T::PATH, i + 1)))
        .collect()
}

fn hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s, 16).map_err(|e| format!("bad hex {s:?}: {e}"))
}

/// The fields of `line`: exactly `N` when `rest_last` is false, else the
/// first `N - 1` and the rest of the line (which may hold spaces). No
/// allocation: the guest decodes tens of thousands of lines under TCG.
fn fields<const N: usize>(line: &str, rest_last: bool) -> Result<[&str; N], String> {
    let mut out = [""; N];
    let mut parts = line.splitn(if rest_last { N } else { N + 1 }, ' ');
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = parts
            .next()
            .ok_or_else(|| format!("{i} fields, want {N}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("more than {N} fields"));
    }
    Ok(out)
}

/// `kallsyms.txt`: every symbol the kernel's table must list, in its
/// order: `ADDR TYPE NAME` (link-time address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KallsymsLine<'a> {
    pub addr: u64,
    pub ty: char,
    pub name: &'a str,
}

impl<'a> Line<'a> for KallsymsLine<'a> {
    const PATH: &'static str = crate::EXPECT_KALLSYMS;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{:x} {} {}", self.addr, self.ty, self.name);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, t, name] = fields(line, false)?;
        let mut ty = t.chars();
        let (Some(ty), None) = (ty.next(), ty.next()) else {
            return Err("type is not one character".into());
        };
        Ok(KallsymsLine {
            addr: hex(a)?,
            ty,
            name,
        })
    }
}

/// `build-info.txt`: facts of the build, `KEY=VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfoLine<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

impl<'a> Line<'a> for BuildInfoLine<'a> {
    const PATH: &'static str = crate::EXPECT_BUILD_INFO;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{}={}", self.key, self.value);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let (key, value) = line.split_once('=').ok_or("no '='")?;
        Ok(BuildInfoLine { key, value })
    }
}

/// `sizes.txt`: the kallsyms names at addresses that have a sized symbol,
/// grouped by address in table order: `ADDR SIZE NESTED NAME`, SIZE and
/// NESTED `-` for an unsized alias (see [`crate::sizes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizesLine<'a> {
    pub addr: u64,
    /// ELF size and whether another symbol starts inside the symbol.
    pub sized: Option<(u64, bool)>,
    pub name: &'a str,
}

impl<'a> Line<'a> for SizesLine<'a> {
    const PATH: &'static str = crate::EXPECT_SIZES;
    fn write(&self, out: &mut String) {
        let _ = match self.sized {
            Some((s, n)) => write!(out, "{:x} {s:x} {} {}", self.addr, n as u8, self.name),
            None => write!(out, "{:x} - - {}", self.addr, self.name),
        };
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, s, n, name] = fields(line, false)?;
        let sized = match (s, n) {
            ("-", "-") => None,
            (s, "0" | "1") => Some((hex(s)?, n == "1")),
            _ => return Err("SIZE NESTED is neither `HEX 0|1` nor `- -`".into()),
        };
        Ok(SizesLine {
            addr: hex(a)?,
            sized,
            name,
        })
    }
}

/// `orphans.txt`: orphaned weak bodies, `START END NAME PRECEDING OBJECT`
/// (`[START, END)` link-time; PRECEDING is what a size-blind lookup
/// reports, `-` for none; OBJECT the `.o` it came from, build-dir relative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanLine<'a> {
    pub start: u64,
    pub end: u64,
    pub name: &'a str,
    pub preceding: Option<&'a str>,
    pub object: &'a str,
}

impl<'a> Line<'a> for OrphanLine<'a> {
    const PATH: &'static str = crate::EXPECT_ORPHANS;
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:x} {:x} {} {} {}",
            self.start,
            self.end,
            self.name,
            self.preceding.unwrap_or("-"),
            self.object
        );
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [s, e, name, p, object] = fields(line, true)?;
        let (start, end) = (hex(s)?, hex(e)?);
        if end <= start {
            return Err("END is not past START".into());
        }
        Ok(OrphanLine {
            start,
            end,
            name,
            preceding: (p != "-").then_some(p),
            object,
        })
    }
}

/// `weak-kept.txt`: weak functions not overridden, `ADDR SIZE TYPE NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeakKeptLine<'a> {
    pub addr: u64,
    pub size: u64,
    pub ty: char,
    pub name: &'a str,
}

impl<'a> Line<'a> for WeakKeptLine<'a> {
    const PATH: &'static str = crate::EXPECT_WEAK_KEPT;
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:x} {:x} {} {}",
            self.addr, self.size, self.ty, self.name
        );
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, s, t, name] = fields(line, false)?;
        Ok(WeakKeptLine {
            addr: hex(a)?,
            size: hex(s)?,
            ty: t.chars().next().ok_or("empty type")?,
            name,
        })
    }
}

/// `format-ps.txt`: `%pS` samples, `ADDR OFFSET EXPECTED` (the symbol's
/// start, the offset looked up, the exact `%pS` text of `ADDR+OFFSET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatPsLine<'a> {
    pub addr: u64,
    pub offset: u64,
    pub expected: &'a str,
}

impl<'a> Line<'a> for FormatPsLine<'a> {
    const PATH: &'static str = crate::EXPECT_FORMAT_PS;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{:x} {:x} {}", self.addr, self.offset, self.expected);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, o, expected] = fields(line, true)?;
        Ok(FormatPsLine {
            addr: hex(a)?,
            offset: hex(o)?,
            expected,
        })
    }
}

/// `module-syms.txt`: functions of the probe module, `NAME SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleSymLine<'a> {
    pub name: &'a str,
    pub size: u64,
}

impl<'a> Line<'a> for ModuleSymLine<'a> {
    const PATH: &'static str = crate::EXPECT_MODULE_SYMS;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{} {:x}", self.name, self.size);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [name, s] = fields(line, false)?;
        Ok(ModuleSymLine {
            name,
            size: hex(s)?,
        })
    }
}

/// Why a kprobe target must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KprobeKind {
    /// The end address of a function (its size past the start).
    PastEnd,
    /// A function of a blacklisted area.
    Blacklisted,
}

impl KprobeKind {
    pub fn name(self) -> &'static str {
        match self {
            KprobeKind::PastEnd => "past-end",
            KprobeKind::Blacklisted => "blacklisted",
        }
    }
}

/// `kprobes.txt`: kprobe targets the kernel must refuse, `ADDR KIND NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KprobeLine<'a> {
    pub addr: u64,
    pub kind: KprobeKind,
    pub name: &'a str,
}

impl<'a> Line<'a> for KprobeLine<'a> {
    const PATH: &'static str = crate::EXPECT_KPROBES;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{:x} {} {}", self.addr, self.kind.name(), self.name);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, k, name] = fields(line, false)?;
        let kind = match k {
            "past-end" => KprobeKind::PastEnd,
            "blacklisted" => KprobeKind::Blacklisted,
            _ => return Err(format!("unknown kind {k:?}")),
        };
        Ok(KprobeLine {
            addr: hex(a)?,
            kind,
            name,
        })
    }
}

/// `blacklist.txt`: kprobes blacklist entries of vmlinux, `START END NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlacklistLine<'a> {
    pub start: u64,
    pub end: u64,
    pub name: &'a str,
}

impl<'a> Line<'a> for BlacklistLine<'a> {
    const PATH: &'static str = crate::EXPECT_BLACKLIST;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{:x} {:x} {}", self.start, self.end, self.name);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [s, e, name] = fields(line, false)?;
        Ok(BlacklistLine {
            start: hex(s)?,
            end: hex(e)?,
            name,
        })
    }
}

/// `nested.txt`: an address of OUTER outside the sized symbol INNER nested
/// in it, `ADDR OUTER_START OUTER_SIZE OUTER INNER INNER_START`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NestedLine<'a> {
    pub addr: u64,
    pub outer_start: u64,
    pub outer_size: u64,
    pub outer: &'a str,
    pub inner: &'a str,
    pub inner_start: u64,
}

impl<'a> Line<'a> for NestedLine<'a> {
    const PATH: &'static str = crate::EXPECT_NESTED;
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:x} {:x} {:x} {} {} {:x}",
            self.addr, self.outer_start, self.outer_size, self.outer, self.inner, self.inner_start
        );
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, os, oz, outer, inner, is] = fields(line, false)?;
        Ok(NestedLine {
            addr: hex(a)?,
            outer_start: hex(os)?,
            outer_size: hex(oz)?,
            outer,
            inner,
            inner_start: hex(is)?,
        })
    }
}

/// `unsized.txt`: a symbol without a size alone at its address, `ADDR
/// START SIZE NAME` (SIZE: the distance to the next symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsizedLine<'a> {
    pub addr: u64,
    pub start: u64,
    pub size: u64,
    pub name: &'a str,
}

impl<'a> Line<'a> for UnsizedLine<'a> {
    const PATH: &'static str = crate::EXPECT_UNSIZED;
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:x} {:x} {:x} {}",
            self.addr, self.start, self.size, self.name
        );
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, s, z, name] = fields(line, false)?;
        Ok(UnsizedLine {
            addr: hex(a)?,
            start: hex(s)?,
            size: hex(z)?,
            name,
        })
    }
}

/// One line of [`crate::EXPECT_FTRACE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtraceLine<'a> {
    pub addr: u64,
    pub name: &'a str,
}

impl<'a> Line<'a> for FtraceLine<'a> {
    const PATH: &'static str = crate::EXPECT_FTRACE;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{:x} {}", self.addr, self.name);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let [a, name] = fields(line, false)?;
        Ok(FtraceLine {
            addr: hex(a)?,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<'a, T: Line<'a> + PartialEq + std::fmt::Debug>(records: &[T], text: &'a str) {
        assert_eq!(encode(records), text, "{}", T::PATH);
        assert_eq!(&decode::<T>(text).unwrap(), records, "{}", T::PATH);
    }

    #[test]
    fn every_file_round_trips() {
        round_trip(
            &[KallsymsLine {
                addr: 0xffffffff81000000,
                ty: 'T',
                name: "_text",
            }],
            "ffffffff81000000 T _text\n",
        );
        round_trip(
            &[BuildInfoLine {
                key: "kallsyms_symbols",
                value: "37953",
            }],
            "kallsyms_symbols=37953\n",
        );
        round_trip(
            &[
                SizesLine {
                    addr: 0x10,
                    sized: Some((0x20, true)),
                    name: "f",
                },
                SizesLine {
                    addr: 0x10,
                    sized: None,
                    name: "f_alias",
                },
            ],
            "10 20 1 f\n10 - - f_alias\n",
        );
        round_trip(
            &[
                OrphanLine {
                    start: 0x10,
                    end: 0x30,
                    name: "w",
                    preceding: Some("p"),
                    object: "kernel/a.o",
                },
                OrphanLine {
                    start: 0x40,
                    end: 0x48,
                    name: "v",
                    preceding: None,
                    object: "b c.o",
                },
            ],
            "10 30 w p kernel/a.o\n40 48 v - b c.o\n",
        );
        round_trip(
            &[WeakKeptLine {
                addr: 0x10,
                size: 0x8,
                ty: 'W',
                name: "k",
            }],
            "10 8 W k\n",
        );
        round_trip(
            &[FtraceLine {
                addr: 0x10,
                name: "f",
            }],
            "10 f\n",
        );
        round_trip(
            &[FormatPsLine {
                addr: 0x10,
                offset: 0x4,
                expected: "f+0x4/0x20 [m]",
            }],
            "10 4 f+0x4/0x20 [m]\n",
        );
        round_trip(
            &[ModuleSymLine {
                name: "ksh_bt_caller",
                size: 0xa,
            }],
            "ksh_bt_caller a\n",
        );
        round_trip(
            &[
                KprobeLine {
                    addr: 0x30,
                    kind: KprobeKind::PastEnd,
                    name: "f",
                },
                KprobeLine {
                    addr: 0x40,
                    kind: KprobeKind::Blacklisted,
                    name: "g",
                },
            ],
            "30 past-end f\n40 blacklisted g\n",
        );
        round_trip(
            &[BlacklistLine {
                start: 0x10,
                end: 0x20,
                name: "e",
            }],
            "10 20 e\n",
        );
        round_trip(
            &[NestedLine {
                addr: 0x170,
                outer_start: 0x140,
                outer_size: 0x60,
                outer: "outer",
                inner: "inner",
                inner_start: 0x160,
            }],
            "170 140 60 outer inner 160\n",
        );
        round_trip(
            &[UnsizedLine {
                addr: 0x23f,
                start: 0x200,
                size: 0x40,
                name: "asm",
            }],
            "23f 200 40 asm\n",
        );
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let e = decode::<SizesLine>("10 20 1 f\n10 20 f\n").unwrap_err();
        assert!(
            e.starts_with("/ksh/expect/sizes.txt:2: 3 fields, want 4"),
            "{e}"
        );
        assert!(decode::<KprobeLine>("30 past-the-end f")
            .unwrap_err()
            .contains("unknown kind"));
        assert!(decode::<OrphanLine>("30 10 w - a.o")
            .unwrap_err()
            .contains("END is not past START"));
        assert!(decode::<KallsymsLine>("zz T x")
            .unwrap_err()
            .contains("bad hex"));
    }
}
