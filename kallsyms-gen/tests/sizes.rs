//! `--symbol-sizes`: the `kallsyms_sizes` table.

mod common;

use common::synth::{self, Flavor, Sym};
use common::*;
use std::collections::HashMap;
use std::fs;

/// Lines of the table `label` (between the label line and the blank line,
/// without 7.3's `.size` line).
fn table<'a>(asm: &'a str, label: &str) -> Vec<&'a str> {
    asm.lines()
        .skip_while(|l| *l != format!("{label}:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with(".size "))
        .collect()
}

/// (value, comment) of `\t.long\tVALUE\t/* COMMENT */` lines.
fn longs(lines: &[&str]) -> Vec<(u64, String)> {
    lines
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("\t.long\t")
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let (v, c) = rest.split_once("\t/* ").unwrap();
            let v = if let Some(h) = v.strip_prefix("0x") {
                u64::from_str_radix(h, 16).unwrap()
            } else if let Some(pc) = v.strip_prefix("_text - . + (") {
                // 7.3's --pc-relative: the offset from _text.
                pc.strip_suffix(')').unwrap().parse::<i64>().unwrap() as u64
            } else {
                v.parse().unwrap()
            };
            (v, c.strip_suffix(" */").unwrap().to_string())
        })
        .collect()
}

fn expected_sizes(syms: &[Sym]) -> HashMap<String, Option<u64>> {
    // type+name → size, for names that occur once.
    let mut m: HashMap<String, Option<u64>> = HashMap::new();
    let mut dup = std::collections::HashSet::new();
    for s in syms {
        let key = format!("{}{}", s.typ as char, String::from_utf8_lossy(&s.name));
        if m.insert(key.clone(), Some(s.size.unwrap_or(0))).is_some() {
            dup.insert(key);
        }
    }
    for k in dup {
        m.insert(k, None);
    }
    m
}

#[test]
fn sizes_table_follows_offsets_order() {
    // x86_64's zero-based percpu symbols need 6.12's --absolute-percpu;
    // 7.3's x86_64 links pass --pc-relative.
    let x86 = option_sets()[2][0];
    let (align, before) = match kernel_format() {
        "6.12" => ("\tALGN", "kallsyms_relative_base:\n"),
        _ => ("\t.balign 4", "kallsyms_offsets:\n"),
    };
    for (flavor, opts) in [
        (Flavor::Arm64, &[][..]),
        (Flavor::Arm64, &["--all-symbols"][..]),
        (Flavor::X86_64, &[x86][..]),
        (Flavor::X86_64, &["--all-symbols", x86][..]),
    ] {
        let syms = synth::synth_syms(flavor, 20_000, 11);
        let sized = synth::render(&syms, true);
        let p4 = scratch("sizes4.map");
        fs::write(&p4, &sized).unwrap();
        let mut o = opts.to_vec();
        o.push("--symbol-sizes");
        let with = run(&rust_bin(), &o, &p4);
        assert!(
            with.status.success(),
            "{}",
            String::from_utf8_lossy(&with.stderr)
        );
        // Without the option a size column is a format error, as in C.
        let rejected = run(&rust_bin(), opts, &p4);
        assert!(!rejected.status.success() && rejected.stdout.is_empty());
        let err = String::from_utf8_lossy(&rejected.stderr);
        assert!(
            err.contains("sizes4.map:") && err.contains("needs --symbol-sizes"),
            "{err}"
        );
        // The same symbols without sizes, without the option.
        let p3 = scratch("sizes3.map");
        fs::write(&p3, synth::render(&syms, false)).unwrap();
        let without = run(&rust_bin(), opts, &p3);
        assert!(without.status.success());
        let asm = String::from_utf8(with.stdout.clone()).unwrap();

        // The block sits right after kallsyms_relative_base (6.12) or
        // kallsyms_offsets (7.3), in the common style.
        let sizes_block = format!(".globl kallsyms_sizes\n{align}\nkallsyms_sizes:\n");
        let start = asm.find(&sizes_block).expect("kallsyms_sizes emitted");
        let rb = asm.find(before).unwrap();
        let seqs = asm.find(".globl kallsyms_seqs_of_names").unwrap();
        assert!(rb < start && start < seqs);
        // Removing the block gives exactly the output without the flag.
        let end = start + asm[start..].find("\n\n").unwrap() + 2;
        let mut stripped = asm[..start].to_string();
        stripped.push_str(&asm[end..]);
        assert_eq!(stripped.as_bytes(), &without.stdout[..], "{opts:?}");

        let offsets = longs(&table(&asm, "kallsyms_offsets"));
        let sizes = longs(&table(&asm, "kallsyms_sizes"));
        assert_eq!(offsets.len(), sizes.len());
        let num: usize = table(&asm, "kallsyms_num_syms")[0]
            .trim_start_matches("\t.long\t")
            .parse()
            .unwrap();
        assert_eq!(num, sizes.len());
        let expect = expected_sizes(&syms);
        let mut checked = 0;
        for ((_, on), (sz, sn)) in offsets.iter().zip(&sizes) {
            assert_eq!(on, sn, "same symbol order as kallsyms_offsets");
            // --absolute-percpu rewrites percpu types to 'A'
            if let Some(Some(want)) = expect.get(sn) {
                assert_eq!(sz, want, "size of {sn}");
                checked += 1;
            }
        }
        assert!(checked > sizes.len() / 2, "{checked} of {}", sizes.len());
        assert!(
            sizes.iter().any(|(v, _)| *v == 0),
            "zero-size symbols present"
        );
        let _ = fs::remove_file(&p4);
    }
}

#[test]
fn sized_lines_need_the_flag_like_c() {
    let syms = synth::synth_syms(Flavor::X86_64, 5_000, 5);
    let (p4, p3) = (scratch("s4.map"), scratch("s3.map"));
    fs::write(&p4, synth::render(&syms, true)).unwrap();
    fs::write(&p3, synth::render(&syms, false)).unwrap();
    for opts in option_sets() {
        // C rejects a size column; so does Rust without --symbol-sizes.
        let c = run(&c_tool(), opts, &p4);
        let r = run(&rust_bin(), opts, &p4);
        assert!(matches!(
            check_pair(&c, &r, opts, "size column without the flag"),
            Outcome::BothFailed
        ));
    }
    // Mixed 3- and 4-column lines are fine; sizes default to 0.
    let mut mixed = Vec::new();
    for (i, line) in synth::render(&syms, true)
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
    {
        if i % 2 == 0 {
            mixed.extend_from_slice(&strip_sizes(line));
        } else {
            mixed.extend_from_slice(line);
        }
    }
    fs::write(&p4, &mixed).unwrap();
    let r = run(&rust_bin(), &["--symbol-sizes"], &p4);
    assert!(r.status.success());
    let _ = fs::remove_file(&p4);
    let _ = fs::remove_file(&p3);
}

/// An `nm -S` line whose type is a NUL byte is a format error, as in C
/// (`type == '\0'`), while the 3-column form takes a NUL type as C does:
/// found by the fuzzer against the patched trees' C tools.
#[test]
fn sized_line_with_a_nul_type_is_refused_like_c() {
    let sized = write_map(
        "nul-type4.map",
        b"ffff800080000000 T _text\nffff800080127730 0000000000000100 \0 cdns_dsi_bridge_post_disable\n",
    );
    let err = refused(&["--symbol-sizes"], &sized);
    assert!(err.contains("line format error"), "{err}");
    let plain = write_map(
        "nul-type3.map",
        b"ffff800080000000 T _text\nffff800080127730 \0 cdns_dsi_bridge_post_disable\n",
    );
    assert!(run(&rust_bin(), &["--symbol-sizes"], &plain)
        .status
        .success());
    if c_knows_sizes() {
        for (map, ok) in [(&sized, Outcome::BothFailed), (&plain, Outcome::BothOk)] {
            for opts in sizes_option_sets() {
                let outcome = compare(map, &opts, "NUL type");
                if opts.contains(&"--symbol-sizes") {
                    assert_eq!(outcome, ok, "{} {opts:?}", map.display());
                }
            }
        }
    }
    let _ = fs::remove_file(&sized);
    let _ = fs::remove_file(&plain);
}

/// A scratch map file `name` holding `text`.
fn write_map(name: &str, text: &[u8]) -> std::path::PathBuf {
    let p = scratch(name);
    fs::write(&p, text).unwrap();
    p
}

/// Runs the generator with `args` on `map`, which it must refuse cleanly
/// (an error, no output, no panic); its stderr.
fn refused(args: &[&str], map: &std::path::Path) -> String {
    let r = run(&rust_bin(), args, map);
    assert!(!r.status.success() && r.stdout.is_empty() && !panicked(&r));
    String::from_utf8_lossy(&r.stderr).into_owned()
}

#[test]
fn oversized_symbol_is_an_error() {
    let p = write_map(
        "huge.map",
        b"0 T _stext\n10 100000000 T huge\n20 T _etext\n",
    );
    let err = refused(&["--symbol-sizes"], &p);
    assert!(
        err.contains("huge.map:2:") && err.contains("does not fit"),
        "{err}"
    );
    // Without the flag a size column is a format error, as in C.
    assert!(!run(&rust_bin(), &[], &p).status.success());
    let _ = fs::remove_file(&p);
}

#[test]
fn compact_sizes_need_symbol_sizes_and_long_lines_are_cut() {
    let p = write_map("plain.map", b"0 T _stext\n20 T _etext\n");
    let err = refused(&["--compact-sizes"], &p);
    assert!(
        err.contains("--compact-sizes needs --symbol-sizes"),
        "{err}"
    );
    let mut long = b"0 T _stext\nzz ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 100_000));
    long.push(b'\n');
    fs::write(&p, &long).unwrap();
    let err = refused(&[], &p);
    assert!(err.contains("plain.map:2:"), "{err}");
    assert!(err.len() < 300 && err.contains("(100003 bytes)"), "{err}");
    let _ = fs::remove_file(&p);
}

/// Values of a `.byte`/`.long` table (one value per line, no comment).
fn values(lines: &[&str]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let v = l
                .split_whitespace()
                .nth(1)
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).unwrap(),
                None => v.parse().unwrap(),
            }
        })
        .collect()
}

/// `--compact-sizes` (KSZ4, patches/6.12/SIZES-FORMAT.md): decoding the four
/// tables the way `kallsyms_sym_size()` does gives back every size of the
/// plain table, and the encoding takes well under a byte per symbol.
#[test]
fn compact_sizes_decode_to_the_plain_sizes() {
    let syms = synth::synth_syms(Flavor::Arm64, 20_000, 7);
    let path = scratch("compact-sizes.map");
    fs::write(&path, synth::render(&syms, true)).unwrap();
    let plain = run(&rust_bin(), &["--all-symbols", "--symbol-sizes"], &path);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let plain = String::from_utf8(plain.stdout).unwrap();
    let compact = run(
        &rust_bin(),
        &["--all-symbols", "--symbol-sizes", "--compact-sizes"],
        &path,
    );
    assert!(
        compact.status.success(),
        "{}",
        String::from_utf8_lossy(&compact.stderr)
    );
    let compact = String::from_utf8(compact.stdout).unwrap();
    assert!(
        !compact.contains("kallsyms_sizes:"),
        "the plain table is replaced"
    );
    // Everything outside the size tables is unchanged.
    let strip = |asm: &str, from: &str| -> String {
        let a = asm.find(from).unwrap();
        let b = asm.find(".globl kallsyms_seqs_of_names").unwrap();
        format!("{}{}", &asm[..a], &asm[b..])
    };
    assert_eq!(
        strip(&plain, ".globl kallsyms_sizes"),
        strip(&compact, ".globl kallsyms_size_codes")
    );

    let sizes: Vec<u64> = longs(&table(&plain, "kallsyms_sizes"))
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    // Without --absolute-percpu, offsets differ from addresses by one base.
    let offs: Vec<u64> = longs(&table(&plain, "kallsyms_offsets"))
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    let codes = values(&table(&compact, "kallsyms_size_codes"));
    let gaps = values(&table(&compact, "kallsyms_size_gaps"));
    let rank = values(&table(&compact, "kallsyms_size_rank"));
    let exc = values(&table(&compact, "kallsyms_size_exc"));
    assert_eq!(gaps.len(), 14);
    assert_eq!(codes.len(), sizes.len().div_ceil(2));
    assert_eq!(rank.len(), sizes.len().div_ceil(256));
    let code = |i: usize| (codes[i / 2] >> (4 * (i % 2))) & 0xf;
    for i in 0..sizes.len() {
        let decoded = match code(i) {
            14 => 0,
            15 => {
                let before = (i & !255..i).filter(|&j| code(j) == 15).count() as u64;
                exc[(rank[i >> 8] + before) as usize]
            }
            c => {
                let next = (i + 1..offs.len())
                    .map(|j| offs[j])
                    .find(|&o| o > offs[i])
                    .expect("a gap code has a next symbol");
                next - offs[i] - gaps[c as usize]
            }
        };
        assert_eq!(decoded, sizes[i], "symbol {i}: code {}", code(i));
    }
    let bytes = codes.len() + 4 * (gaps.len() + rank.len() + exc.len());
    let per_symbol = bytes as f64 / sizes.len() as f64;
    assert!(per_symbol < 1.0, "{per_symbol:.3} bytes per symbol");
}

/// `kallsyms_size_exc` is never shorter than the previous link pass's,
/// which the map shows as the distance from it to `kallsyms_seqs_of_names`
/// (SIZES-FORMAT.md, writer rule 3): padded with zeros up to that many entries,
/// and left as it is when it is longer. Without this, a length that
/// alternated between link passes failed an arm64 clang build with
/// "Inconsistent kallsyms data".
#[test]
fn exc_table_never_shrinks_below_the_previous_pass() {
    // Three functions whose sizes escape (each runs past the next symbol's
    // start, so no gap code fits), then the previous pass's tables.
    let map = |exc_entries: u64| {
        let exc = 0xffffffff81200000u64;
        let mut m = String::new();
        for (i, (addr, size)) in [
            (0xffffffff81000000u64, 0x41u64),
            (0xffffffff81000040, 0x43),
            (0xffffffff81000080, 0x47),
            (0xffffffff810000c0, 0x10),
        ]
        .iter()
        .enumerate()
        {
            m.push_str(&format!("{addr:016x} {size:016x} T f{i}\n"));
        }
        m.push_str("ffffffff81100000 T _etext\n");
        m.push_str(&format!("{exc:016x} D kallsyms_size_exc\n"));
        m.push_str(&format!(
            "{:016x} D kallsyms_seqs_of_names\n",
            exc + 4 * exc_entries
        ));
        m
    };
    let exc_of = |previous: u64| -> Vec<u64> {
        let path = scratch(&format!("exc-previous-{previous}.map"));
        fs::write(&path, map(previous)).unwrap();
        let r = run(
            &rust_bin(),
            &["--all-symbols", "--symbol-sizes", "--compact-sizes"],
            &path,
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        values(&table(
            &String::from_utf8(r.stdout).unwrap(),
            "kallsyms_size_exc",
        ))
    };
    // No previous tables (the first pass lays them out empty): the escapes.
    let natural = exc_of(0);
    assert!(!natural.is_empty() && natural.iter().all(|&v| v != 0));
    // A longer previous table: the same entries, then zeros up to its length.
    let padded = exc_of(natural.len() as u64 + 5);
    assert_eq!(padded.len(), natural.len() + 5);
    assert_eq!(&padded[..natural.len()], &natural[..]);
    assert!(padded[natural.len()..].iter().all(|&v| v == 0));
    // A shorter one changes nothing.
    assert_eq!(exc_of(1), natural);
}

/// A `kallsyms_offsets[]` entry as written: `.long WORD` (6.12; 7.3
/// without `--pc-relative`) or `.long _text - . + (OFF)` (7.3).
#[derive(Clone, Copy, Debug)]
enum Offset {
    Word(u32),
    TextRelative(i32),
}

fn raw_offsets(asm: &str) -> Vec<(Offset, String)> {
    table(asm, "kallsyms_offsets")
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("\t.long\t")
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let (v, c) = rest.split_once("\t/* ").unwrap();
            let v = if let Some(off) = v.strip_prefix("_text - . + (") {
                Offset::TextRelative(off.strip_suffix(')').unwrap().parse().unwrap())
            } else if let Some(h) = v.strip_prefix("0x") {
                Offset::Word(u32::from_str_radix(h, 16).unwrap())
            } else {
                Offset::Word(v.parse().unwrap())
            };
            (v, c.strip_suffix(" */").unwrap().to_string())
        })
        .collect()
}

/// The addresses the kernel computes from the tables
/// (`kallsyms_sym_address()` of the kernel line), `text` being `_text`'s.
fn kernel_addresses(asm: &str, opts: &[&str], text: u64) -> Vec<u64> {
    let offsets = raw_offsets(asm);
    if kernel_format() == "6.12" {
        // `PTR _text + X` or `PTR _text - X`.
        let line = table(asm, "kallsyms_relative_base")[0];
        let expr = line.strip_prefix("\tPTR\t_text ").unwrap();
        let (sign, v) = expr.split_at(2);
        let v = match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap(),
        };
        let base = if sign == "+ " {
            text.wrapping_add(v)
        } else {
            text.wrapping_sub(v)
        };
        let absolute_percpu = opts.contains(&"--absolute-percpu");
        offsets
            .iter()
            .map(|(o, _)| {
                let Offset::Word(w) = *o else {
                    panic!("6.12 writes no _text-relative offset")
                };
                if !absolute_percpu {
                    base.wrapping_add(u64::from(w))
                } else if (w as i32) >= 0 {
                    u64::from(w)
                } else {
                    base.wrapping_sub(1)
                        .wrapping_sub(i64::from(w as i32) as u64)
                }
            })
            .collect()
    } else {
        assert!(!asm.contains("kallsyms_relative_base"));
        offsets
            .iter()
            .map(|(o, _)| match *o {
                // offset_to_ptr(): the entry's own address + `_text - .
                // + OFF` is `_text + OFF`.
                Offset::TextRelative(off) => text.wrapping_add(i64::from(off) as u64),
                // A 32-bit kernel's address.
                Offset::Word(w) => u64::from(w),
            })
            .collect()
    }
}

/// `kallsyms_sym_size()` over the compact tables, at the addresses
/// `addrs` the kernel computed.
fn kernel_sizes(asm: &str, addrs: &[u64]) -> Vec<u64> {
    let codes = values(&table(asm, "kallsyms_size_codes"));
    let gaps = values(&table(asm, "kallsyms_size_gaps"));
    let rank = values(&table(asm, "kallsyms_size_rank"));
    let exc = values(&table(asm, "kallsyms_size_exc"));
    assert_eq!(gaps.len(), 14);
    assert_eq!(codes.len(), addrs.len().div_ceil(2));
    assert_eq!(rank.len(), addrs.len().div_ceil(256));
    let code = |i: usize| (codes[i / 2] >> (4 * (i % 2))) & 0xf;
    (0..addrs.len())
        .map(|i| match code(i) {
            14 => 0,
            15 => {
                let before = (i & !255..i).filter(|&j| code(j) == 15).count() as u64;
                exc[(rank[i >> 8] + before) as usize]
            }
            c => {
                let next = addrs[i + 1..]
                    .iter()
                    .find(|&&a| a > addrs[i])
                    .expect("a gap code has a next symbol");
                next - addrs[i] - gaps[c as usize]
            }
        })
        .collect()
}

/// The size tables decode exactly under every layout of the kernel line
/// (6.12: offsets from `kallsyms_relative_base`, with and without
/// `--absolute-percpu`; 7.3: `--pc-relative` offsets from `_text`, and
/// 32-bit absolute words): the addresses the kernel computes are the map's,
/// the compact tables give back the plain table's sizes at those addresses,
/// and those are the `nm -S` sizes. With a patched tree's C tool
/// (`c_knows_sizes`) both tools' outputs are also compared byte for byte.
#[test]
fn sizes_decode_exactly_under_every_layout() {
    let mut decoded: Vec<String> = Vec::new();
    for flavor in [Flavor::X86_64, Flavor::Arm64] {
        let syms = synth::synth_syms(flavor, 20_000, 13);
        let text = syms.iter().rev().find(|s| s.name == b"_text").unwrap().addr;
        let mut addrs_of: HashMap<String, Vec<u64>> = HashMap::new();
        for s in &syms {
            let name = String::from_utf8_lossy(&s.name).into_owned();
            addrs_of.entry(name).or_default().push(s.addr);
        }
        let expect = expected_sizes(&syms);
        // name → size, for names that occur once (whatever their type).
        let mut size_by_name: HashMap<String, Option<u64>> = HashMap::new();
        for s in &syms {
            let name = String::from_utf8_lossy(&s.name).into_owned();
            if addrs_of[&name].len() == 1 {
                size_by_name.insert(name, Some(s.size.unwrap_or(0)));
            }
        }
        let path = scratch("layouts.map");
        fs::write(&path, synth::render(&syms, true)).unwrap();
        for opts in option_sets() {
            let with = |extra: &[&'static str]| {
                let o: Vec<&str> = opts.iter().chain(extra).copied().collect();
                if c_knows_sizes() {
                    compare(&path, &o, &format!("{flavor:?}"));
                }
                run(&rust_bin(), &o, &path)
            };
            let plain = with(&["--symbol-sizes"]);
            let compact = with(&["--symbol-sizes", "--compact-sizes"]);
            assert_eq!(plain.status.success(), compact.status.success());
            if !plain.status.success() {
                // An offset the layout cannot encode (6.12's x86_64
                // zero-based percpu symbols without --absolute-percpu).
                let err = String::from_utf8_lossy(&plain.stderr);
                assert!(err.contains("out of range"), "{flavor:?} {opts:?}: {err}");
                continue;
            }
            let plain = String::from_utf8(plain.stdout).unwrap();
            let compact = String::from_utf8(compact.stdout).unwrap();
            let addrs = kernel_addresses(&compact, opts, text);
            assert_eq!(addrs, kernel_addresses(&plain, opts, text));
            // The kernel's addresses are the map's (a 32-bit word: its
            // low half).
            let absolute_words = kernel_format() != "6.12" && !opts.contains(&"--pc-relative");
            for ((_, comment), a) in raw_offsets(&compact).iter().zip(&addrs) {
                let at = &addrs_of[&comment[1..]];
                assert!(
                    at.iter().any(|m| if absolute_words {
                        *m as u32 as u64 == *a
                    } else {
                        m == a
                    }),
                    "{flavor:?} {opts:?}: {comment} decoded at {a:#x}, map has {at:x?}"
                );
            }
            let sizes: Vec<u64> = longs(&table(&plain, "kallsyms_sizes"))
                .into_iter()
                .map(|(v, _)| v)
                .collect();
            assert_eq!(
                kernel_sizes(&compact, &addrs),
                sizes,
                "{flavor:?} {opts:?}: compact tables decoded at the kernel's addresses"
            );
            let mut checked = 0;
            for (((_, comment), _), size) in raw_offsets(&plain).iter().zip(&addrs).zip(&sizes) {
                // --absolute-percpu writes percpu types as 'A': by name.
                let want = expect.get(comment).or_else(|| {
                    comment
                        .strip_prefix('A')
                        .and_then(|name| size_by_name.get(name))
                });
                if let Some(Some(want)) = want {
                    assert_eq!(size, want, "{flavor:?} {opts:?}: size of {comment}");
                    checked += 1;
                }
            }
            assert!(checked > sizes.len() / 2, "{checked} of {}", sizes.len());
            decoded.push(format!("{flavor:?} {opts:?}"));
        }
        let _ = fs::remove_file(&path);
    }
    // Every layout of the line decoded on some map, and each arch's link
    // options (6.12 x86_64: --absolute-percpu; 7.3: --pc-relative) on its own.
    let has = |s: &str| decoded.iter().any(|d| d.contains(s));
    if kernel_format() == "6.12" {
        assert!(
            has("X86_64 [\"--absolute-percpu\"]") && has("Arm64 []"),
            "{decoded:?}"
        );
    } else {
        assert!(
            has("X86_64 [\"--pc-relative\"]") && has("Arm64 []"),
            "{decoded:?}"
        );
    }
    eprintln!("decoded exactly: {decoded:?}");
}

/// The previous pass's `kallsyms_size_exc` length is C's `unsigned int`:
/// tables 4 * (2^32 + 3) bytes apart in the map mean 3 entries, not four
/// billion (found by the fuzzer: the Rust tool took the 64-bit count and
/// allocated it). A count that is large after the truncation is written
/// zero by zero as C does, not allocated first.
#[test]
fn previous_exc_length_is_an_unsigned_int_like_c() {
    let exc = 0xffff_8000_8120_0000u64;
    let map = format!(
        "ffff800080000000 T _text\n\
         ffff800080000000 0000000000000041 T f0\n\
         ffff800080000040 0000000000000043 T f1\n\
         ffff800080000080 0000000000000010 T f2\n\
         ffff800080100000 T _etext\n\
         {exc:016x} D kallsyms_size_exc\n\
         {:016x} D kallsyms_seqs_of_names\n",
        exc + 4 * ((1u64 << 32) + 3)
    );
    let path = write_map("exc-modulo.map", map.as_bytes());
    let opts = ["--all-symbols", "--symbol-sizes", "--compact-sizes"];
    let r = run(&rust_bin(), &opts, &path);
    if kernel_format() == "6.12" {
        // 6.12 stores offsets from the lowest address in 32 bits: a map
        // 16 GiB wide is refused before the size tables.
        assert!(!r.status.success());
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("out of range"), "{err}");
        if c_knows_sizes() {
            assert_eq!(
                compare(&path, &opts, "exc modulo 2^32"),
                Outcome::BothFailed
            );
        }
    } else {
        // 7.3 without --pc-relative: 32-bit words, the map is written.
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let exc_table = values(&table(
            &String::from_utf8(r.stdout).unwrap(),
            "kallsyms_size_exc",
        ));
        assert_eq!(exc_table.len(), 3, "{exc_table:?}");
        if c_knows_sizes() {
            assert_eq!(compare(&path, &opts, "exc modulo 2^32"), Outcome::BothOk);
        }
    }
    let _ = fs::remove_file(&path);
}
