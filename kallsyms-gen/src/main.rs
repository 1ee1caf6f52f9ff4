// SPDX-License-Identifier: GPL-2.0-only
//! `kallsyms-gen`: a byte-identical Rust drop-in for the `scripts/kallsyms`
//! (C) of Linux 6.12 and of Linux 7.3 (`--format=7.3`), plus optional size
//! tables.
//!
//! Usage: `kallsyms-gen [--all-symbols] [--absolute-percpu | --pc-relative]
//! [--symbol-sizes [--compact-sizes]] [--format=6.12|7.3] in.map > out.S`
//! (`--absolute-percpu` exists in 6.12 only, `--pc-relative` in 7.3 only,
//! as in each kernel's C tool).
//!
//! The pipeline mirrors `scripts/kallsyms.c` stage by stage so the two can be
//! read side by side, one module per stage (the functions keep the C names):
//!
//! `read_map` → `shrink_table` → `make_percpus_absolute` → `sort_symbols` →
//! `record_relative_base` → `optimize_token_table` → `write_src`
//!
//! 7.3's tool (`--format=7.3`, [`Format`]) has no `make_percpus_absolute`
//! and `record_relative_base`, and writes `kallsyms_offsets` from `_text`
//! (`--pc-relative`) or as truncated addresses; everything else is the same
//! code.
//!
//! | module | stage(s) of `scripts/kallsyms.c` |
//! |---|---|
//! | [`read_map`] | `read_map()`, `read_symbol()` |
//! | [`filter`] | `shrink_table()`, `symbol_valid()`, `make_percpus_absolute()` |
//! | [`sort`] | `sort_symbols()`, `compare_symbols()`, `record_relative_base()` |
//! | [`compress`] | `optimize_token_table()` and its helpers, `expand_symbol()` |
//! | [`write_src`] | `write_src()`, `output_label()`, `sort_symbols_by_name()` |
//! | [`sizes`] | (not in C) `kallsyms_sizes` and the KSZ4 compact tables |
//! | [`table`] | `struct sym_entry`, `struct addr_range`: the symbol table |
//! | [`out`] | the output buffer with `printf`'s formats, shared by the writers |
//!
//! This file is `main()` with the command line, and the helpers every stage
//! uses.
//!
//! For every input the C tool accepts, the output is byte-identical to it.
//! In addition, `nm -n -S` lines (`ADDR SIZE TYPE NAME`) are accepted; the
//! size is ignored unless `--symbol-sizes` is given, in which case a
//! `kallsyms_sizes` table is emitted (see [`sizes::write_sizes_table`]).
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
//!   `getline()` buffer (see [`read_map::read_map`]).
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
//! The crate is std only, so that it also builds as a Kbuild Rust host
//! program (`scripts/kallsyms-rs/`, crate root `kallsyms-rs.rs`: this file)
//! with a plain `rustc --edition=2021 -O main.rs`; rustc finds the module
//! files next to it and lists them in its dep-info, so Kbuild rebuilds the
//! program when any of them changes.

mod compress;
mod filter;
mod out;
mod read_map;
mod sizes;
mod sort;
mod table;
mod write_src;

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::process::exit;

/// Which kernel's `scripts/kallsyms` the output must equal byte for byte:
/// its options, its `kallsyms_offsets` encoding and its directives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Format {
    /// Linux 6.12: `--absolute-percpu`, offsets from `kallsyms_relative_base`,
    /// the `PTR`/`ALGN` macros, tables as bare labels.
    #[default]
    Linux6_12,
    /// Linux 7.3 (mainline since 6.15): `--pc-relative` (`.long _text - . +
    /// (off)`) or absolute 32-bit offsets, no relative base, `.balign 4`,
    /// a `.size` line after each table.
    Linux7_3,
}

impl Format {
    fn parse(v: &[u8]) -> Option<Format> {
        match v {
            b"6.12" => Some(Format::Linux6_12),
            b"7.3" => Some(Format::Linux7_3),
            _ => None,
        }
    }

    /// The C tool's own options for this kernel (ours come after them).
    fn c_options(self) -> [&'static str; 2] {
        match self {
            Format::Linux6_12 => ["all-symbols", "absolute-percpu"],
            Format::Linux7_3 => ["all-symbols", "pc-relative"],
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Format::Linux6_12 => concat!(
                "Usage: kallsyms [--all-symbols] [--absolute-percpu]",
                " [--symbol-sizes [--compact-sizes]] [--format=6.12|7.3] in.map > out.S\n"
            ),
            Format::Linux7_3 => concat!(
                "Usage: kallsyms [--all-symbols] [--pc-relative]",
                " [--symbol-sizes [--compact-sizes]] [--format=6.12|7.3] in.map > out.S\n"
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Command line (GNU getopt_long compatible)
// ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Options {
    all_symbols: bool,
    /// 6.12 only.
    absolute_percpu: bool,
    /// 7.3 only.
    pc_relative: bool,
    format: Format,
    symbol_sizes: bool,
    /// With `symbol_sizes`: the KSZ4 tables instead of `kallsyms_sizes`.
    compact_sizes: bool,
    input: OsString,
}

fn usage(format: Format) -> ! {
    eprint!("{}", format.usage());
    exit(1);
}

/// `--format` is ours, so it is found before the C options are parsed
/// (they depend on it): the value of the last `--format=V`/`--format V`
/// (any unambiguous prefix of `--format`, as getopt accepts) before `--`.
/// The default is 6.12, the format of the series' first kernel.
fn find_format(args: &[OsString]) -> Format {
    let mut format = Format::default();
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let a = arg.as_bytes();
        if a == b"--" {
            break;
        }
        let Some(body) = a.strip_prefix(b"--") else {
            continue;
        };
        let (name, value) = match body.iter().position(|&c| c == b'=') {
            Some(p) => (&body[..p], Some(&body[p + 1..])),
            None => (body, None),
        };
        if name.is_empty() || !b"format".starts_with(name) {
            continue;
        }
        let value = match value {
            Some(v) => v,
            None => match it.next() {
                Some(v) => v.as_bytes(),
                None => {
                    eprintln!("kallsyms-gen: option '--format' requires an argument");
                    usage(format);
                }
            },
        };
        format = Format::parse(value).unwrap_or_else(|| {
            eprintln!(
                "kallsyms-gen: --format: unknown kernel '{}' (known: 6.12, 7.3)",
                String::from_utf8_lossy(value)
            );
            usage(format);
        });
    }
    format
}

/// Mirrors `getopt_long(argc, argv, "", long_options, NULL)` as the C tool
/// uses it: long options only, unambiguous prefixes accepted, arguments
/// permuted (unless `POSIXLY_CORRECT` is set), `--` ends option parsing.
/// Any error prints the usage and exits with status 1, like the C tool.
/// The input file is the first non-option argument; further ones are ignored.
fn parse_args(args: &[OsString]) -> Options {
    let format = find_format(args);
    let [c0, c1] = format.c_options();
    let long: [&str; 5] = [c0, c1, "symbol-sizes", "compact-sizes", "format"];
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
    let mut opts = Options {
        format,
        ..Options::default()
    };
    let mut skip_value = false;
    let mut nonopts: Vec<&OsString> = Vec::new();
    let mut options_done = false;
    for arg in args.iter().skip(1) {
        let a = arg.as_bytes();
        if skip_value {
            // The separate value of `--format` (read by `find_format`).
            skip_value = false;
            continue;
        }
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
            let found = match long.iter().position(|l| l.as_bytes() == name) {
                Some(i) => i,
                None => {
                    let cands: Vec<usize> = (0..long.len())
                        .filter(|&i| long[i].as_bytes().starts_with(name))
                        .collect();
                    if cands.len() != 1 {
                        let what = if cands.is_empty() {
                            "unrecognized"
                        } else {
                            "ambiguous"
                        };
                        eprintln!("kallsyms-gen: {what} option '{}'", arg.to_string_lossy());
                        usage(format);
                    }
                    cands[0]
                }
            };
            if long[found] == "format" {
                skip_value = !has_value;
                continue;
            }
            if has_value {
                eprintln!(
                    "kallsyms-gen: option '--{}' doesn't allow an argument",
                    long[found]
                );
                usage(format);
            }
            match long[found] {
                "all-symbols" => opts.all_symbols = true,
                "absolute-percpu" => opts.absolute_percpu = true,
                "pc-relative" => opts.pc_relative = true,
                "symbol-sizes" => opts.symbol_sizes = true,
                _ => opts.compact_sizes = true,
            }
            continue;
        }
        if a.len() > 1 && a[0] == b'-' {
            eprintln!("kallsyms-gen: invalid option -- '{}'", a[1].escape_ascii());
            usage(format);
        }
        nonopts.push(arg);
        if posixly_correct {
            options_done = true;
        }
    }
    match nonopts.first() {
        Some(f) => opts.input = (*f).clone(),
        None => usage(format),
    }
    // The compact encoding is of the sizes: without them there is nothing
    // to encode, and silently writing no table would hide a Kbuild mistake.
    if opts.compact_sizes && !opts.symbol_sizes {
        eprintln!("kallsyms-gen: --compact-sizes needs --symbol-sizes");
        usage(format);
    }
    opts
}

fn fatal(msg: &str) -> ! {
    eprintln!("kallsyms-gen: {msg}");
    exit(1);
}

fn io_error_text(e: &io::Error) -> String {
    // perror()-style text without Rust's " (os error N)" suffix.
    let s = e.to_string();
    match s.find(" (os error") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

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

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let opts = parse_args(&args);

    let mut table = read_map::read_map(&opts.input, &opts);
    filter::shrink_table(&mut table, opts.all_symbols);
    if opts.absolute_percpu {
        filter::make_percpus_absolute(&mut table);
    }
    sort::sort_symbols(&mut table);
    if opts.format == Format::Linux6_12 {
        sort::record_relative_base(&mut table);
    }
    let tokens = compress::optimize_token_table(&mut table);
    write_src::write_src(&mut table, &tokens, &opts);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        std::iter::once("kallsyms")
            .chain(v.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn format_is_found_in_every_getopt_spelling() {
        for v in [
            &["--format=7.3", "m"][..],
            &["--format", "7.3", "m"],
            &["m", "--fo=7.3"],
            &["--f", "7.3", "--pc-relative", "m"],
            &["--format=6.12", "--format=7.3", "m"],
        ] {
            let o = parse_args(&args(v));
            assert_eq!(o.format, Format::Linux7_3, "{v:?}");
            assert_eq!(o.input, "m", "{v:?}");
        }
        let o = parse_args(&args(&["--format", "6.12", "--absolute-percpu", "m"]));
        assert_eq!((o.format, o.absolute_percpu), (Format::Linux6_12, true));
        let o = parse_args(&args(&["--al", "m"]));
        assert_eq!(o.format, Format::Linux6_12, "6.12 is the default");
        // After `--` nothing is an option, not even `--format`.
        let o = parse_args(&args(&["--", "m", "--format=7.3"]));
        assert_eq!(o.format, Format::Linux6_12);
    }

    #[test]
    fn each_format_has_its_own_c_options() {
        assert_eq!(
            Format::Linux6_12.c_options(),
            ["all-symbols", "absolute-percpu"]
        );
        assert_eq!(Format::Linux7_3.c_options(), ["all-symbols", "pc-relative"]);
        // With only 7.3's options `--a` is not ambiguous (6.12's getopt
        // rejects it: all-symbols or absolute-percpu).
        let o = parse_args(&args(&["--format=7.3", "--a", "m"]));
        assert!(o.all_symbols);
    }
}
