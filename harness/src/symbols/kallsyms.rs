//! The rules of `scripts/kallsyms.c` (Linux 6.12 and 7.3): which
//! `System.map` lines become kallsyms entries, in which order, and how
//! `kallsyms_offsets[]` stores their addresses.
//!
//! Everything here works on "map-like" items (address, type char, name) so
//! the same code can be fed from our `nm` emulation (to compute the
//! expectation from `vmlinux`) and from a real `.tmp_vmlinux*.syms` file (to
//! check that emulation against what the build actually used).
//!
//! These rules are written out again here on purpose, not taken from the
//! Rust generator (`kallsyms-gen/`, patch 0009): this is the oracle the
//! generators' output is checked against, and an oracle that shared code
//! with the generator under test would share its bugs.
//!
//! The two kernel lines select and sort alike (7.3 only lost 6.12's
//! `--absolute-percpu`); they differ in how `kallsyms_offsets[]` holds an
//! address ([`Offsets`]). Which one a build has comes from its kernel
//! line ([`kernel_of_build_dir`], the tree's `Makefile`) and `.config`, as
//! its `link-vmlinux.sh` decides it ([`Kernel::generator_flags`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cell::Kernel;

/// `KSYM_NAME_LEN` in 6.12 and 7.3: longer names are skipped (with a
/// message) by `read_symbol`.
pub const KSYM_NAME_LEN: usize = 512;

/// How `kallsyms_offsets[]` stores an address, and so how the kernel's
/// `kallsyms_sym_address()` reads it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Offsets {
    /// 6.12: an unsigned offset from `kallsyms_relative_base` (the lowest
    /// address stored relative). With `--absolute-percpu`
    /// (`CONFIG_KALLSYMS_ABSOLUTE_PERCPU`) percpu symbols are stored as
    /// non-negative absolute values with type `A`, the others as
    /// `relative_base - 1 - value`, a negative value.
    RelativeBase { absolute_percpu: bool },
    /// 7.3 `--pc-relative` (64-bit or relocatable kernels): `.long _text -
    /// . + (addr - _text)`, which the kernel adds to the entry's own
    /// address (`offset_to_ptr()`).
    PcRelative,
    /// 7.3 without `--pc-relative` (32-bit, not relocatable): the address
    /// truncated to 32 bits.
    Absolute,
}

/// The table layout of a kernel line, from its entry's generator format:
/// which [`Offsets`] its options can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `kallsyms_relative_base` (6.12).
    RelativeBase,
    /// Offsets from `_text` or absolute (7.3).
    TextRelative,
}

impl Layout {
    fn of(kernel: Kernel) -> Result<Layout> {
        match kernel.line().generator_format {
            "6.12" => Ok(Layout::RelativeBase),
            "7.3" => Ok(Layout::TextRelative),
            other => bail!(
                "kernel {kernel}: the symbol oracle does not know the tables of generator format {other}"
            ),
        }
    }
}

/// Command line options of `scripts/kallsyms` (those that change the
/// table; `--symbol-sizes`/`--compact-sizes` only add the size tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KallsymsOptions {
    /// `--all-symbols` (`CONFIG_KALLSYMS_ALL`): keep data symbols too.
    pub all_symbols: bool,
    /// How addresses are stored (`--absolute-percpu`, `--pc-relative`).
    pub offsets: Offsets,
}

impl Default for KallsymsOptions {
    /// 6.12's tool without options.
    fn default() -> Self {
        KallsymsOptions {
            all_symbols: false,
            offsets: Offsets::RelativeBase {
                absolute_percpu: false,
            },
        }
    }
}

impl KallsymsOptions {
    /// `--absolute-percpu`: percpu symbols become absolute, type `A`.
    pub fn absolute_percpu(&self) -> bool {
        matches!(
            self.offsets,
            Offsets::RelativeBase {
                absolute_percpu: true
            }
        )
    }

    /// The options as `scripts/kallsyms` takes them, in `link-vmlinux.sh`'s
    /// order.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.all_symbols {
            v.push("--all-symbols");
        }
        match self.offsets {
            Offsets::RelativeBase {
                absolute_percpu: true,
            } => v.push("--absolute-percpu"),
            Offsets::PcRelative => v.push("--pc-relative"),
            _ => {}
        }
        v
    }

    /// The options `flags` (of the kernel line's `scripts/kallsyms`) stand
    /// for; a flag the line's tool does not know is an error.
    pub fn from_flags(kernel: Kernel, flags: &[&str]) -> Result<KallsymsOptions> {
        let known = kernel.line().generator_flags;
        if let Some(f) = flags.iter().find(|f| !known.iter().any(|(k, _)| k == *f)) {
            bail!("kernel {kernel}: scripts/kallsyms has no option {f}");
        }
        let has = |f: &str| flags.contains(&f);
        let offsets = match Layout::of(kernel)? {
            Layout::RelativeBase => Offsets::RelativeBase {
                absolute_percpu: has("--absolute-percpu"),
            },
            Layout::TextRelative if has("--pc-relative") => Offsets::PcRelative,
            Layout::TextRelative => Offsets::Absolute,
        };
        Ok(KallsymsOptions {
            all_symbols: has("--all-symbols"),
            offsets,
        })
    }

    /// Every option set the kernel line's tool knows: each subset of the
    /// flags its `link-vmlinux.sh` may pass.
    pub fn every_set(kernel: Kernel) -> Result<Vec<KallsymsOptions>> {
        let flags: Vec<&str> = kernel
            .line()
            .generator_flags
            .iter()
            .map(|(f, _)| *f)
            .collect();
        (0..1u32 << flags.len())
            .map(|mask| {
                let subset: Vec<&str> = (0..flags.len())
                    .filter(|b| mask & (1 << b) != 0)
                    .map(|b| flags[b])
                    .collect();
                KallsymsOptions::from_flags(kernel, &subset)
            })
            .collect()
    }
}

/// The kernel line of a build dir, from its tree's top `Makefile`: the
/// `source` link Kbuild leaves in an `O=` dir, else the dir itself (a
/// build in the tree).
pub fn kernel_of_build_dir(dir: &Path) -> Result<Kernel> {
    let mut tried = Vec::new();
    for makefile in [dir.join("source/Makefile"), dir.join("Makefile")] {
        let Ok(text) = std::fs::read_to_string(&makefile) else {
            tried.push(format!("{}: unreadable", makefile.display()));
            continue;
        };
        match Kernel::of_makefile(&text) {
            Ok(k) => return Ok(k),
            Err(e) => tried.push(format!("{}: {e}", makefile.display())),
        }
    }
    bail!(
        "{}: no kernel version found ({})",
        dir.display(),
        tried.join("; ")
    )
}

/// Options as the build's `scripts/link-vmlinux.sh` derives them from its
/// `.config`, for the kernel line of its tree.
pub fn kallsyms_options_for_build(dir: &Path) -> Result<KallsymsOptions> {
    let kernel = kernel_of_build_dir(dir)?;
    let dot_config = dir.join(".config");
    let text = std::fs::read_to_string(&dot_config)
        .with_context(|| format!("reading {}", dot_config.display()))?;
    kallsyms_options_from_config_text(kernel, &text)
}

/// [`kallsyms_options_for_build`] of the build dir holding `dot_config`.
pub fn kallsyms_options_from_config(dot_config: &Path) -> Result<KallsymsOptions> {
    let dir = dot_config
        .parent()
        .with_context(|| format!("{}: no build dir", dot_config.display()))?;
    let kernel = kernel_of_build_dir(dir)?;
    let text = std::fs::read_to_string(dot_config)
        .with_context(|| format!("reading {}", dot_config.display()))?;
    kallsyms_options_from_config_text(kernel, &text)
}

/// Like [`kallsyms_options_for_build`] on the `.config` text of a kernel
/// line's build. `is_enabled` in link-vmlinux.sh means `CONFIG_X=y`
/// exactly.
pub fn kallsyms_options_from_config_text(kernel: Kernel, text: &str) -> Result<KallsymsOptions> {
    KallsymsOptions::from_flags(kernel, &kernel.generator_flags(text))
}

/// One line of a `System.map`-format file (`ADDR TYPE NAME`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSymbol {
    /// Address.
    pub addr: u64,
    /// Type character (as in the map, or `A` once made percpu-absolute).
    pub ty: u8,
    /// Name.
    pub name: String,
}

/// Parse map text the way `read_symbol` does: `strtoull(…, 16)`, one space,
/// one type char, one space, the rest of the line is the name. A malformed
/// line is an error (kallsyms exits with "line format error").
pub fn parse_map(text: &str) -> Result<Vec<MapSymbol>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        let hex_end = b
            .iter()
            .position(|c| !c.is_ascii_hexdigit())
            .unwrap_or(b.len());
        if hex_end == 0 || b.len() < hex_end + 3 || b[hex_end] != b' ' || b[hex_end + 2] != b' ' {
            bail!("line format error at line {}: {line:?}", n + 1);
        }
        let addr = u64::from_str_radix(&line[..hex_end], 16)
            .with_context(|| format!("bad address at line {}", n + 1))?;
        out.push(MapSymbol {
            addr,
            ty: b[hex_end + 1],
            name: line[hex_end + 3..].to_string(),
        });
    }
    Ok(out)
}

/// What the kallsyms rules need to know about an input symbol.
pub trait MapLike {
    /// Address.
    fn addr(&self) -> u64;
    /// Type char.
    fn ty(&self) -> u8;
    /// Name bytes.
    fn name_bytes(&self) -> &[u8];
    /// Called by `make_percpus_absolute` (type becomes `A`).
    fn make_percpu_absolute(&mut self);
}

impl MapLike for MapSymbol {
    fn addr(&self) -> u64 {
        self.addr
    }
    fn ty(&self) -> u8 {
        self.ty
    }
    fn name_bytes(&self) -> &[u8] {
        self.name.as_bytes()
    }
    fn make_percpu_absolute(&mut self) {
        self.ty = b'A';
    }
}

/// `is_ignored_symbol()`: `u`/`n` types and absolute symbols other than a
/// few ia64/parisc names.
pub fn is_ignored_symbol(name: &[u8], ty: u8) -> bool {
    if ty == b'u' || ty == b'n' {
        return true;
    }
    if ty.eq_ignore_ascii_case(&b'A') {
        const KEEP: [&[u8]; 4] = [
            b"__kernel_syscall_via_break",
            b"__kernel_syscall_via_epc",
            b"__kernel_sigtramp",
            b"__gp",
        ];
        return !KEEP.contains(&name);
    }
    false
}

/// `may_be_linker_script_provide_symbol()`: a name-based guess used only as
/// a sort key.
pub fn may_be_linker_script_provide_symbol(name: &[u8]) -> bool {
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

#[derive(Clone, Copy, Debug)]
struct Range {
    start: u64,
    end: u64,
}

impl Range {
    fn contains(&self, a: u64) -> bool {
        a >= self.start && a <= self.end
    }
}

/// Apply `read_map` (minus parsing) → `shrink_table` →
/// `make_percpus_absolute` → `sort_symbols`, returning the kept items in
/// kallsyms order, each with a flag saying whether it was made
/// percpu-absolute.
///
/// Mirrors the C code including its quirks: ranges come from the *last*
/// non-ignored symbol of each boundary name; `_etext`-valued aliases are
/// dropped only without `--all-symbols`; `_text` is looked at before the
/// ignore check (irrelevant here, it only sets the relative base's anchor).
pub fn apply_kallsyms_rules<T: MapLike>(input: Vec<T>, opts: &KallsymsOptions) -> Vec<(T, bool)> {
    let mut text = Range { start: 0, end: 0 };
    let mut inittext = Range { start: 0, end: 0 };
    let mut percpu = Range {
        start: u64::MAX,
        end: 0,
    };

    // read_map / read_symbol
    let mut table: Vec<(usize, T)> = Vec::with_capacity(input.len());
    for item in input {
        let name = item.name_bytes();
        if name.len() >= KSYM_NAME_LEN || is_ignored_symbol(name, item.ty()) {
            continue;
        }
        let a = item.addr();
        match name {
            b"_stext" => text.start = a,
            b"_etext" => text.end = a,
            b"_sinittext" => inittext.start = a,
            b"_einittext" => inittext.end = a,
            b"__per_cpu_start" => percpu.start = a,
            b"__per_cpu_end" => percpu.end = a,
            _ => {}
        }
        let seq = table.len();
        table.push((seq, item));
    }

    // shrink_table / symbol_valid
    if !opts.all_symbols {
        table.retain(|(_, s)| {
            let name = s.name_bytes();
            if name.starts_with(b"__start_") || name.starts_with(b"__stop_") {
                return true;
            }
            let a = s.addr();
            if !text.contains(a) && !inittext.contains(a) {
                return false;
            }
            !((a == text.end && name != b"_etext") || (a == inittext.end && name != b"_einittext"))
        });
    }

    // make_percpus_absolute
    let mut table: Vec<(usize, T, bool)> = table
        .into_iter()
        .map(|(seq, mut s)| {
            let abs = opts.absolute_percpu() && percpu.contains(s.addr());
            if abs {
                s.make_percpu_absolute();
            }
            (seq, s, abs)
        })
        .collect();

    // sort_symbols / compare_symbols: a total order thanks to `seq`.
    table.sort_by(|(sa, a, _), (sb, b, _)| {
        let weak = |t: &T| matches!(t.ty(), b'w' | b'W');
        let unders = |t: &T| t.name_bytes().iter().take_while(|&&c| c == b'_').count();
        a.addr()
            .cmp(&b.addr())
            .then_with(|| weak(a).cmp(&weak(b)))
            .then_with(|| {
                may_be_linker_script_provide_symbol(a.name_bytes())
                    .cmp(&may_be_linker_script_provide_symbol(b.name_bytes()))
            })
            .then_with(|| unders(a).cmp(&unders(b)))
            .then_with(|| sa.cmp(sb))
    });
    table.into_iter().map(|(_, s, abs)| (s, abs)).collect()
}

/// The kallsyms table `scripts/kallsyms` would build from a map file's text.
pub fn kallsyms_from_map(map: &[MapSymbol], opts: &KallsymsOptions) -> Vec<MapSymbol> {
    apply_kallsyms_rules(map.to_vec(), opts)
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

/// One `kallsyms_offsets[]` entry as `scripts/kallsyms` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetValue {
    /// `.long VALUE`: the 32-bit word (6.12's offsets, 7.3 without
    /// `--pc-relative`).
    Word(u32),
    /// `.long _text - . + (OFF)` (7.3 `--pc-relative`): the address's
    /// distance from `_text`.
    TextRelative(i32),
}

/// `_text` as `read_symbol()` records it: the address of the last map
/// line named `_text` (of any type; names too long for kallsyms are not
/// looked at), else 0.
pub fn text_address<T: MapLike>(map: &[T]) -> u64 {
    map.iter()
        .rev()
        .find(|s| s.name_bytes() == b"_text")
        .map_or(0, |s| s.addr())
}

/// The `kallsyms_offsets[]` entries `write_src()` writes for the table
/// `entries` (kallsyms order; each address with whether it was made
/// percpu-absolute) under `opts`, `text` being [`text_address`]; or the
/// tool's refusal (an offset it cannot encode: its message says "out of
/// range").
pub fn expected_offsets(
    entries: &[(u64, bool)],
    opts: &KallsymsOptions,
    text: u64,
) -> std::result::Result<Vec<OffsetValue>, String> {
    // record_relative_base(): the first entry not stored absolute.
    let base = entries.iter().find(|(_, abs)| !abs).map_or(0, |(a, _)| *a);
    let out_of_range = |addr: u64| Err(format!("symbol value {addr:#x} out of range"));
    let mut out = Vec::with_capacity(entries.len());
    for &(addr, abs) in entries {
        let v = match opts.offsets {
            Offsets::RelativeBase {
                absolute_percpu: false,
            } => {
                let off = i128::from(addr) - i128::from(base);
                if !(0..=i128::from(u32::MAX)).contains(&off) {
                    return out_of_range(addr);
                }
                OffsetValue::Word(off as u32)
            }
            Offsets::RelativeBase {
                absolute_percpu: true,
            } if abs => {
                // `long long offset = addr`: addresses from 2^63 are negative.
                let off = addr as i64;
                if !(0..=i64::from(i32::MAX)).contains(&off) {
                    return out_of_range(addr);
                }
                OffsetValue::Word(off as u32)
            }
            Offsets::RelativeBase {
                absolute_percpu: true,
            } => {
                let off = i128::from(base) - i128::from(addr) - 1;
                if !(i128::from(i32::MIN)..0).contains(&off) {
                    return out_of_range(addr);
                }
                OffsetValue::Word(off as i32 as u32)
            }
            Offsets::PcRelative => {
                // `long long offset = addr - _text`, an unsigned difference.
                let off = addr.wrapping_sub(text) as i64;
                let Ok(off) = i32::try_from(off) else {
                    return out_of_range(addr);
                };
                OffsetValue::TextRelative(off)
            }
            Offsets::Absolute => OffsetValue::Word(addr as u32),
        };
        out.push(v);
    }
    Ok(out)
}

/// Extract the table from a generated `.tmp_vmlinux*.kallsyms.S` (either
/// kernel line's): the `kallsyms_offsets` block carries one
/// `/* <type><name> */` comment per entry, in table order. Returns the
/// (type, name) pairs and the entries' values.
pub fn parse_kallsyms_s(text: &str) -> Result<Vec<(u8, String, OffsetValue)>> {
    let mut in_offsets = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("kallsyms_offsets:") {
            in_offsets = true;
            continue;
        }
        if !in_offsets {
            continue;
        }
        // 6.12 goes on with the next label, 7.3 first sizes the table.
        if line.starts_with(".globl") || line.starts_with(".size") || line.ends_with(':') {
            break;
        }
        let Some(rest) = line.trim_start().strip_prefix(".long") else {
            continue;
        };
        let (val, comment) = rest
            .split_once("/*")
            .with_context(|| format!("no comment in {line:?}"))?;
        let comment = comment
            .strip_suffix("*/")
            .context("unterminated comment")?
            .trim();
        let val = val.trim();
        let v = if let Some(off) = val.strip_prefix("_text - . + (") {
            let off = off
                .strip_suffix(')')
                .with_context(|| format!("unbalanced offset in {line:?}"))?;
            OffsetValue::TextRelative(off.parse()?)
        } else if let Some(h) = val.strip_prefix("0x") {
            // `%#x`: 6.12 prints an int's bits, 7.3 an unsigned int.
            OffsetValue::Word(u32::from_str_radix(h, 16)?)
        } else {
            OffsetValue::Word(val.parse()?)
        };
        let ty = *comment.as_bytes().first().context("empty comment")?;
        out.push((ty, comment[1..].to_string(), v));
    }
    if !in_offsets {
        bail!("no kallsyms_offsets label");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(addr: u64, ty: u8, name: &str) -> MapSymbol {
        MapSymbol {
            addr,
            ty,
            name: name.into(),
        }
    }

    /// The names kallsyms keeps of `map` under `opts`, in its order.
    fn names_of(map: &[MapSymbol], opts: &KallsymsOptions) -> Vec<String> {
        kallsyms_from_map(map, opts)
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    #[test]
    fn parse_map_format() {
        let v =
            parse_map("ffffffff81000000 T _text\n0000000000000000 D __per_cpu_start\n").unwrap();
        assert_eq!(v[0], m(0xffffffff81000000, b'T', "_text"));
        assert!(parse_map("ffff T\n").is_err());
        assert!(parse_map("ffff 0000000000000010 T x\n").is_err());
    }

    #[test]
    fn ignored_types() {
        assert!(is_ignored_symbol(b"x", b'u'));
        assert!(is_ignored_symbol(b"x", b'n'));
        assert!(is_ignored_symbol(b"x", b'a'));
        assert!(is_ignored_symbol(b"x", b'A'));
        assert!(!is_ignored_symbol(b"__gp", b'A'));
        assert!(!is_ignored_symbol(b"x", b'N')); // mksysmap drops N, kallsyms does not
    }

    #[test]
    fn text_only_rules() {
        let map = vec![
            m(0x100, b'T', "_stext"),
            m(0x100, b'T', "a"),
            m(0x180, b'D', "data"),
            m(0x180, b'D', "__start_foo"),
            m(0x200, b'T', "_etext"),
            m(0x200, b't', "at_etext"),
            m(0x300, b'T', "_sinittext"),
            m(0x380, b'T', "_einittext"),
            m(0x380, b'T', "x_einit"),
            m(0x400, b'A', "abs"),
            m(0x10, b'D', "__stop_bar"),
        ];
        let off = KallsymsOptions::default();
        let names = names_of(&map, &off);
        assert_eq!(
            names,
            [
                "__stop_bar",
                "a",
                "_stext",
                "data",
                "__start_foo",
                "_etext",
                "_sinittext",
                "_einittext"
            ]
        );
        let all = KallsymsOptions {
            all_symbols: true,
            ..off
        };
        let names = names_of(&map, &all);
        assert_eq!(names.len(), 10); // only "abs" is gone
        assert!(names.contains(&"at_etext".to_string()));
    }

    #[test]
    fn sort_keys() {
        let map = vec![
            m(0x10, b'W', "weak"),
            m(0x10, b'T', "__start_x_end"),
            m(0x10, b'T', "__two"),
            m(0x10, b'T', "_one"),
            m(0x10, b'T', "zero"),
            m(0x10, b'T', "alsozero"),
            m(0x08, b'w', "first"),
        ];
        let all = KallsymsOptions {
            all_symbols: true,
            ..Default::default()
        };
        let names = names_of(&map, &all);
        assert_eq!(
            names,
            [
                "first",
                "zero",
                "alsozero",
                "_one",
                "__two",
                "__start_x_end",
                "weak"
            ]
        );
    }

    #[test]
    fn percpu_absolute() {
        let map = vec![
            m(0x0, b'D', "__per_cpu_start"),
            m(0x40, b'W', "pcpu_weak"),
            m(0x80, b'D', "__per_cpu_end"),
            m(0x81, b'D', "after"),
        ];
        let opts = KallsymsOptions {
            all_symbols: true,
            offsets: Offsets::RelativeBase {
                absolute_percpu: true,
            },
        };
        let r = apply_kallsyms_rules(map, &opts);
        let tys: Vec<u8> = r.iter().map(|(s, _)| s.ty).collect();
        assert_eq!(tys, b"AAAD");
        assert_eq!(r.iter().filter(|(_, abs)| *abs).count(), 3);
    }

    fn kernel(v: &str) -> Kernel {
        Kernel::parse(v).unwrap()
    }

    #[test]
    fn options_from_config() {
        let config =
            "CONFIG_KALLSYMS=y\nCONFIG_KALLSYMS_ALL=y\n# CONFIG_KALLSYMS_ABSOLUTE_PERCPU is not set\nCONFIG_64BIT=y\n";
        let o = kallsyms_options_from_config_text(kernel("6.12"), config).unwrap();
        assert_eq!(o.flags(), ["--all-symbols"]);
        assert!(o.all_symbols && !o.absolute_percpu());
        let pcpu = config.replace(
            "# CONFIG_KALLSYMS_ABSOLUTE_PERCPU is not set",
            "CONFIG_KALLSYMS_ABSOLUTE_PERCPU=y",
        );
        let o = kallsyms_options_from_config_text(kernel("6.12"), &pcpu).unwrap();
        assert!(o.absolute_percpu());
        // 7.3: 64-bit or relocatable kernels store offsets from _text.
        let o = kallsyms_options_from_config_text(kernel("7.3"), config).unwrap();
        assert_eq!(o.offsets, Offsets::PcRelative);
        assert_eq!(o.flags(), ["--all-symbols", "--pc-relative"]);
        let o = kallsyms_options_from_config_text(kernel("7.3"), "CONFIG_RELOCATABLE=y\n").unwrap();
        assert_eq!((o.all_symbols, o.offsets), (false, Offsets::PcRelative));
        let o = kallsyms_options_from_config_text(kernel("7.3"), "CONFIG_KALLSYMS=y\n").unwrap();
        assert_eq!(o.offsets, Offsets::Absolute);
    }

    #[test]
    fn option_sets_of_each_line() {
        for k in Kernel::all() {
            let sets = KallsymsOptions::every_set(k).unwrap();
            assert_eq!(sets.len(), 4, "{k}");
            for o in &sets {
                assert_eq!(KallsymsOptions::from_flags(k, &o.flags()).unwrap(), *o);
            }
        }
        let e = KallsymsOptions::from_flags(kernel("7.3"), &["--absolute-percpu"]).unwrap_err();
        assert!(e.to_string().contains("no option --absolute-percpu"), "{e}");
        assert!(KallsymsOptions::from_flags(kernel("6.12"), &["--pc-relative"]).is_err());
    }

    #[test]
    fn kernel_of_a_build_dir() {
        let d = std::env::temp_dir().join(format!("ksh-kernel-of-{}", std::process::id()));
        let tree = d.join("tree");
        let out = tree.join(".ksh-build-x");
        std::fs::create_dir_all(&out).unwrap();
        // Kbuild's O= dir: a wrapper Makefile and a `source` link.
        std::fs::write(out.join("Makefile"), "include ../Makefile\n").unwrap();
        let e = kernel_of_build_dir(&out).unwrap_err().to_string();
        assert!(e.contains("no kernel version found"), "{e}");
        std::fs::write(
            tree.join("Makefile"),
            "VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("..", out.join("source")).unwrap();
        assert_eq!(kernel_of_build_dir(&out).unwrap(), kernel("7.3"));
        // A build in the tree.
        assert_eq!(kernel_of_build_dir(&tree).unwrap(), kernel("7.3"));
        std::fs::write(tree.join(".config"), "CONFIG_64BIT=y\n").unwrap();
        let o = kallsyms_options_for_build(&tree).unwrap();
        assert_eq!(o.offsets, Offsets::PcRelative);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn parse_s_offsets() {
        // 6.12's values are an int's bits, 7.3's an unsigned address.
        let s = "kallsyms_offsets:\n\t.long\t0\t/* Tfoo */\n\t.long\t0xffffffff\t/* Abar */\n\n.globl kallsyms_relative_base\n";
        let v = parse_kallsyms_s(s).unwrap();
        assert_eq!(
            v,
            vec![
                (b'T', "foo".into(), OffsetValue::Word(0)),
                (b'A', "bar".into(), OffsetValue::Word(u32::MAX))
            ]
        );
        // 7.3 --pc-relative, and its `.size` line ends the table.
        let s = "\t.balign 4\nkallsyms_offsets:\n\t.long\t_text - . + (-16)\t/* Tfoo */\n\t.long\t_text - . + (8585216)\t/* B_end */\n.size kallsyms_offsets, . - kallsyms_offsets\n\n";
        let v = parse_kallsyms_s(s).unwrap();
        assert_eq!(
            v,
            vec![
                (b'T', "foo".into(), OffsetValue::TextRelative(-16)),
                (b'B', "_end".into(), OffsetValue::TextRelative(8585216))
            ]
        );
        assert!(parse_kallsyms_s("\t.long\t_text - . + (1\t/* Tx */\n").is_err());
    }

    #[test]
    fn offsets_as_each_layout_writes_them() {
        let text = 0xffff_ffff_8100_0000;
        // (address, made percpu-absolute): a zero-based percpu symbol first.
        let entries = [(0x1000, true), (text, false), (text + 0x40, false)];
        let with = |offsets| KallsymsOptions {
            all_symbols: true,
            offsets,
        };
        let w = OffsetValue::Word;
        let pcpu = with(Offsets::RelativeBase {
            absolute_percpu: true,
        });
        assert_eq!(
            expected_offsets(&entries, &pcpu, text).unwrap(),
            [w(0x1000), w(u32::MAX), w(-0x41i32 as u32)]
        );
        // Relative to the lowest address: _text is too far from 0x1000.
        let plain = [(0x1000, false), (text, false), (text + 0x40, false)];
        let rel = with(Offsets::RelativeBase {
            absolute_percpu: false,
        });
        assert!(expected_offsets(&plain, &rel, text)
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(
            expected_offsets(&plain[1..], &rel, text).unwrap(),
            [w(0), w(0x40)]
        );
        let t = OffsetValue::TextRelative;
        assert_eq!(
            expected_offsets(&plain, &with(Offsets::PcRelative), text).unwrap(),
            [t(0x7f00_1000), t(0), t(0x40)]
        );
        assert!(expected_offsets(
            &[(text - (1 << 32), false)],
            &with(Offsets::PcRelative),
            text
        )
        .is_err());
        assert_eq!(
            expected_offsets(&plain, &with(Offsets::Absolute), text).unwrap(),
            [w(0x1000), w(0x8100_0000), w(0x8100_0040)]
        );
        let map = [
            MapSymbol {
                addr: 1,
                ty: b'T',
                name: "_text".into(),
            },
            MapSymbol {
                addr: 2,
                ty: b'A',
                name: "_text".into(),
            },
        ];
        assert_eq!(text_address(&map), 2);
        assert_eq!(text_address::<MapSymbol>(&[]), 0);
    }
}
