//! The rules of `scripts/kallsyms.c` (Linux 6.12): which `System.map`
//! lines become kallsyms entries, and in which order.
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

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// `KSYM_NAME_LEN` in 6.12: longer names are skipped (with a message) by
/// `read_symbol`.
pub const KSYM_NAME_LEN: usize = 512;

/// Command line options of `scripts/kallsyms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KallsymsOptions {
    /// `--all-symbols` (`CONFIG_KALLSYMS_ALL`): keep data symbols too.
    pub all_symbols: bool,
    /// `--absolute-percpu` (`CONFIG_KALLSYMS_ABSOLUTE_PERCPU`): percpu
    /// symbols are stored as absolute values with type `A`.
    pub absolute_percpu: bool,
}

/// Options as `scripts/link-vmlinux.sh` derives them from `.config`.
pub fn kallsyms_options_from_config(dot_config: &Path) -> Result<KallsymsOptions> {
    let text = std::fs::read_to_string(dot_config)
        .with_context(|| format!("reading {}", dot_config.display()))?;
    Ok(kallsyms_options_from_config_text(&text))
}

/// Like [`kallsyms_options_from_config`] on the file's text. `is_enabled`
/// in link-vmlinux.sh means `CONFIG_X=y` exactly.
pub fn kallsyms_options_from_config_text(text: &str) -> KallsymsOptions {
    let on = |key: &str| {
        text.lines()
            .any(|l| l.trim_end() == format!("{key}=y").as_str())
    };
    KallsymsOptions {
        all_symbols: on("CONFIG_KALLSYMS_ALL"),
        absolute_percpu: on("CONFIG_KALLSYMS_ABSOLUTE_PERCPU"),
    }
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
            let abs = opts.absolute_percpu && percpu.contains(s.addr());
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

/// Extract the table from a generated `.tmp_vmlinux*.kallsyms.S`: the
/// `kallsyms_offsets` block carries one `/* <type><name> */` comment per
/// entry, in table order. Returns (type, name) pairs and the raw `.long`
/// values.
pub fn parse_kallsyms_s(text: &str) -> Result<Vec<(u8, String, i64)>> {
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
        if line.starts_with(".globl") || line.ends_with(':') {
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
        let v = if let Some(h) = val.strip_prefix("0x") {
            // printed with %#x from an int: two's complement 32-bit.
            i64::from(u32::from_str_radix(h, 16)? as i32)
        } else {
            val.parse::<i64>()?
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
            absolute_percpu: false,
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
            absolute_percpu: true,
        };
        let r = apply_kallsyms_rules(map, &opts);
        let tys: Vec<u8> = r.iter().map(|(s, _)| s.ty).collect();
        assert_eq!(tys, b"AAAD");
        assert_eq!(r.iter().filter(|(_, abs)| *abs).count(), 3);
    }

    #[test]
    fn options_from_config() {
        let o = kallsyms_options_from_config_text(
            "CONFIG_KALLSYMS=y\nCONFIG_KALLSYMS_ALL=y\n# CONFIG_KALLSYMS_ABSOLUTE_PERCPU is not set\n",
        );
        assert!(o.all_symbols && !o.absolute_percpu);
    }

    #[test]
    fn parse_s_offsets() {
        let s = "kallsyms_offsets:\n\t.long\t0x10\t/* Tfoo */\n\t.long\t0xffffffff\t/* Abar */\n\n.globl kallsyms_relative_base\n";
        let v = parse_kallsyms_s(s).unwrap();
        assert_eq!(v, vec![(b'T', "foo".into(), 16), (b'A', "bar".into(), -1)]);
    }
}
