//! The expectation files under [`crate::EXPECT_DIR`]: the registry
//! ([`EXPECT_FILES`]: each file's path, format and what every kernel the
//! harness builds guarantees about it) and one record type per file with
//! its encoder and decoder. The host writes a record into the file of its
//! type ([`Line::FILE`]) and the guest reads it with the same type, so
//! adding a file is one registry entry and a record type (then its writer
//! on the host and its reader in a probe), a format change is one edit
//! here, and a drift fails to compile or fails the round-trip tests.
//! Text, one record per line, fields separated by one space, addresses and
//! sizes in lowercase hex without `0x`; the last field of a record may hold
//! spaces where the record says so.

use std::fmt::Write as _;

/// One line of an expectation file.
pub trait Line<'a>: Sized {
    /// The file this is the record of (its entry in [`EXPECT_FILES`]).
    const FILE: FileId;
    /// The file's path in the guest.
    const PATH: &'static str = Self::FILE.path();
    /// Appends the record's line (without the newline) to `out`.
    fn write(&self, out: &mut String);
    /// Parses one line; the error says what is wrong (the caller adds
    /// the file and line number).
    fn parse(line: &'a str) -> Result<Self, String>;
}

/// An expectation file: its entry in [`EXPECT_FILES`] (the variants are in
/// the registry's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileId {
    Kallsyms,
    BuildInfo,
    Sizes,
    SizesCheck,
    SizesCounts,
    Orphans,
    WeakKept,
    FormatPs,
    ModuleSyms,
    Kprobes,
    Blacklist,
    Nested,
    Unsized,
    Ftrace,
}

impl FileId {
    /// How many files there are.
    pub const COUNT: usize = EXPECT_FILES.len();

    /// The file's registry entry.
    pub const fn spec(self) -> &'static ExpectFile {
        &EXPECT_FILES[self as usize]
    }

    /// The file's path in the guest.
    pub const fn path(self) -> &'static str {
        self.spec().path
    }
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One record per line, of the [`Line`] type named here.
    Lines(&'static str),
    /// The `sizes` plan as `crate::check` records (binary).
    CheckRecords,
    /// The `sizes` plan's counts, one line (`crate::sizes::counts_line`).
    CountsLine,
}

/// What every kernel the harness builds guarantees about a file: the host
/// refuses to ship a file that breaks it (the ground truth is broken, and
/// a probe given it would check nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// Nothing (the file may be empty).
    Maybe,
    /// Every kernel fills it.
    Always,
    /// Filled whenever the probe module was built.
    WithModule,
}

/// One expectation file of the registry.
#[derive(Debug, Clone, Copy)]
pub struct ExpectFile {
    pub id: FileId,
    /// Path in the guest, under [`crate::EXPECT_DIR`].
    pub path: &'static str,
    pub format: Format,
    pub filled: Filled,
    /// The fixture patch's symbols (`crate::FIXTURE_PREFIX`) are in it
    /// whenever the fixture is in the tree.
    pub fixture_entries: bool,
}

/// Every expectation file, in the order the host ships them.
pub const EXPECT_FILES: &[ExpectFile] = &[
    // Every symbol the kernel's table must list, in its order.
    ExpectFile {
        id: FileId::Kallsyms,
        path: "/ksh/expect/kallsyms.txt",
        format: Format::Lines("KallsymsLine"),
        filled: Filled::Always,
        fixture_entries: true,
    },
    // Facts of the build (release, options, counts, the KASLR anchor).
    ExpectFile {
        id: FileId::BuildInfo,
        path: "/ksh/expect/build-info.txt",
        format: Format::Lines("BuildInfoLine"),
        filled: Filled::Always,
        fixture_entries: false,
    },
    // Sized kallsyms symbols to look up (`sizes` probe), grouped by address.
    ExpectFile {
        id: FileId::Sizes,
        path: "/ksh/expect/sizes.txt",
        format: Format::Lines("SizesLine"),
        filled: Filled::Always,
        fixture_entries: true,
    },
    // `sizes.txt` as check records (link-time addresses): the probe sends
    // it to the kernel as it is, with the KASLR offset in the header.
    ExpectFile {
        id: FileId::SizesCheck,
        path: "/ksh/expect/sizes-check.bin",
        format: Format::CheckRecords,
        filled: Filled::Maybe,
        fixture_entries: false,
    },
    ExpectFile {
        id: FileId::SizesCounts,
        path: "/ksh/expect/sizes-counts.txt",
        format: Format::CountsLine,
        filled: Filled::Maybe,
        fixture_entries: false,
    },
    // Orphaned weak bodies (overridden weak functions' leftover code).
    ExpectFile {
        id: FileId::Orphans,
        path: "/ksh/expect/orphans.txt",
        format: Format::Lines("OrphanLine"),
        filled: Filled::Maybe,
        fixture_entries: true,
    },
    // Weak functions kept (not overridden).
    ExpectFile {
        id: FileId::WeakKept,
        path: "/ksh/expect/weak-kept.txt",
        format: Format::Lines("WeakKeptLine"),
        filled: Filled::Maybe,
        fixture_entries: true,
    },
    // `%pS` samples.
    ExpectFile {
        id: FileId::FormatPs,
        path: "/ksh/expect/format-ps.txt",
        format: Format::Lines("FormatPsLine"),
        filled: Filled::Maybe,
        fixture_entries: true,
    },
    // Functions of the probe module.
    ExpectFile {
        id: FileId::ModuleSyms,
        path: "/ksh/expect/module-syms.txt",
        format: Format::Lines("ModuleSymLine"),
        filled: Filled::WithModule,
        fixture_entries: false,
    },
    // kprobe targets the kernel must refuse.
    ExpectFile {
        id: FileId::Kprobes,
        path: "/ksh/expect/kprobes.txt",
        format: Format::Lines("KprobeLine"),
        filled: Filled::Maybe,
        fixture_entries: true,
    },
    // kprobes blacklist entries the kernel must create for vmlinux, from
    // the areas `populate_kprobe_blacklist()` walks and `NOKPROBE_SYMBOL()`.
    ExpectFile {
        id: FileId::Blacklist,
        path: "/ksh/expect/blacklist.txt",
        format: Format::Lines("BlacklistLine"),
        filled: Filled::Maybe,
        fixture_entries: false,
    },
    // Addresses of a sized symbol outside the sized symbols nested in it.
    ExpectFile {
        id: FileId::Nested,
        path: "/ksh/expect/nested.txt",
        format: Format::Lines("NestedLine"),
        filled: Filled::Maybe,
        fixture_entries: false,
    },
    // Symbols without a size, alone at their address.
    ExpectFile {
        id: FileId::Unsized,
        path: "/ksh/expect/unsized.txt",
        format: Format::Lines("UnsizedLine"),
        filled: Filled::Maybe,
        fixture_entries: false,
    },
    // The call sites ftrace keeps after boot (empty without
    // `CONFIG_DYNAMIC_FTRACE`); `ftrace/filter-all` compares the kernel's
    // selection for `*` with these names.
    ExpectFile {
        id: FileId::Ftrace,
        path: "/ksh/expect/ftrace.txt",
        format: Format::Lines("FtraceLine"),
        filled: Filled::Maybe,
        fixture_entries: false,
    },
];

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
    const FILE: FileId = FileId::Kallsyms;
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
    const FILE: FileId = FileId::BuildInfo;
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{}={}", self.key, self.value);
    }
    fn parse(line: &'a str) -> Result<Self, String> {
        let (key, value) = line.split_once('=').ok_or("no '='")?;
        Ok(BuildInfoLine { key, value })
    }
}

/// The build's facts as a value: what `build-info.txt` holds, in its
/// order. The host keeps it as built and encodes it for the guest only;
/// the guest decodes the file. Plain `(key, value)` strings, so a caller
/// that saves it (a run dir) stores [`BuildInfo::encode`]'s text, the
/// guest's own file, or the pairs with any serialiser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    pub facts: Vec<(String, String)>,
}

impl BuildInfo {
    /// Appends a fact (keys are kept in the order they were added).
    pub fn push(&mut self, key: &str, value: impl ToString) {
        self.facts.push((key.to_string(), value.to_string()));
    }

    /// The value of the first `key` fact.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.facts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The number of kallsyms symbols (`crate::SYMBOLS_KEY`), 0 when
    /// absent: what the probes' timeouts scale with.
    pub fn symbols(&self) -> u64 {
        self.get(crate::SYMBOLS_KEY)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The text of `build-info.txt`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.facts {
            push(&mut out, &BuildInfoLine { key, value });
        }
        out
    }

    /// Reads `build-info.txt`'s text.
    pub fn decode(text: &str) -> Result<Self, String> {
        Ok(BuildInfo {
            facts: decode::<BuildInfoLine>(text)?
                .into_iter()
                .map(|b| (b.key.to_string(), b.value.to_string()))
                .collect(),
        })
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
    const FILE: FileId = FileId::Sizes;
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
    const FILE: FileId = FileId::Orphans;
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
    const FILE: FileId = FileId::WeakKept;
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
    const FILE: FileId = FileId::FormatPs;
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
    const FILE: FileId = FileId::ModuleSyms;
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
    const FILE: FileId = FileId::Kprobes;
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
    const FILE: FileId = FileId::Blacklist;
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
    const FILE: FileId = FileId::Nested;
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
    const FILE: FileId = FileId::Unsized;
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

/// `ftrace.txt`: a call site ftrace keeps after boot, `ADDR NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtraceLine<'a> {
    pub addr: u64,
    pub name: &'a str,
}

impl<'a> Line<'a> for FtraceLine<'a> {
    const FILE: FileId = FileId::Ftrace;
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

    /// Checks one record type's encoding both ways; returns its file.
    fn round_trip<'a, T: Line<'a> + PartialEq + std::fmt::Debug>(
        records: &[T],
        text: &'a str,
    ) -> FileId {
        assert_eq!(encode(records), text, "{}", T::PATH);
        assert_eq!(&decode::<T>(text).unwrap(), records, "{}", T::PATH);
        // The registry names the record type of the file.
        let name = std::any::type_name::<T>();
        let Format::Lines(want) = T::FILE.spec().format else {
            panic!("{}: a record type for a file without lines", T::PATH);
        };
        assert_eq!(
            name.rsplit("::").next().unwrap().split('<').next(),
            Some(want)
        );
        T::FILE
    }

    #[test]
    fn the_registry_is_in_order_with_unique_paths() {
        let mut paths = std::collections::HashSet::new();
        for (i, f) in EXPECT_FILES.iter().enumerate() {
            assert_eq!(f.id as usize, i, "{}: FileId order differs", f.path);
            assert!(paths.insert(f.path), "{} registered twice", f.path);
            let dir = f.path.strip_prefix(crate::EXPECT_DIR).unwrap_or_default();
            assert!(
                dir.starts_with('/') && !dir[1..].contains('/'),
                "{}",
                f.path
            );
        }
        assert_eq!(FileId::Ftrace.path(), "/ksh/expect/ftrace.txt");
    }

    #[test]
    fn build_info_is_a_value_encoded_for_the_guest() {
        let mut b = BuildInfo::default();
        b.push(crate::SYMBOLS_KEY, 37953);
        b.push("kprobes", "1");
        let text = b.encode();
        assert_eq!(text, "kallsyms_symbols=37953\nkprobes=1\n");
        assert_eq!(BuildInfo::decode(&text).unwrap(), b);
        assert_eq!(
            (b.symbols(), b.get("kprobes"), b.get("x")),
            (37953, Some("1"), None)
        );
        assert!(BuildInfo::decode("no equals sign").is_err());
    }

    #[test]
    fn every_file_round_trips() {
        let mut covered = std::collections::BTreeSet::new();
        covered.insert(round_trip(
            &[KallsymsLine {
                addr: 0xffffffff81000000,
                ty: 'T',
                name: "_text",
            }],
            "ffffffff81000000 T _text\n",
        ));
        covered.insert(round_trip(
            &[BuildInfoLine {
                key: "kallsyms_symbols",
                value: "37953",
            }],
            "kallsyms_symbols=37953\n",
        ));
        covered.insert(round_trip(
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
        ));
        covered.insert(round_trip(
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
        ));
        covered.insert(round_trip(
            &[WeakKeptLine {
                addr: 0x10,
                size: 0x8,
                ty: 'W',
                name: "k",
            }],
            "10 8 W k\n",
        ));
        covered.insert(round_trip(
            &[FtraceLine {
                addr: 0x10,
                name: "f",
            }],
            "10 f\n",
        ));
        covered.insert(round_trip(
            &[FormatPsLine {
                addr: 0x10,
                offset: 0x4,
                expected: "f+0x4/0x20 [m]",
            }],
            "10 4 f+0x4/0x20 [m]\n",
        ));
        covered.insert(round_trip(
            &[ModuleSymLine {
                name: "ksh_bt_caller",
                size: 0xa,
            }],
            "ksh_bt_caller a\n",
        ));
        covered.insert(round_trip(
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
        ));
        covered.insert(round_trip(
            &[BlacklistLine {
                start: 0x10,
                end: 0x20,
                name: "e",
            }],
            "10 20 e\n",
        ));
        covered.insert(round_trip(
            &[NestedLine {
                addr: 0x170,
                outer_start: 0x140,
                outer_size: 0x60,
                outer: "outer",
                inner: "inner",
                inner_start: 0x160,
            }],
            "170 140 60 outer inner 160\n",
        ));
        covered.insert(round_trip(
            &[UnsizedLine {
                addr: 0x23f,
                start: 0x200,
                size: 0x40,
                name: "asm",
            }],
            "23f 200 40 asm\n",
        ));
        // Every file of lines has a record type with a round trip here.
        let lines: std::collections::BTreeSet<FileId> = EXPECT_FILES
            .iter()
            .filter(|f| matches!(f.format, Format::Lines(_)))
            .map(|f| f.id)
            .collect();
        assert_eq!(covered, lines);
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
