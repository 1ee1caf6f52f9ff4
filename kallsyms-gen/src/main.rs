// SPDX-License-Identifier: GPL-2.0-only
//! `kallsyms-gen`: a byte-identical Rust drop-in for Linux 6.12's
//! `scripts/kallsyms` (C), plus an optional `kallsyms_sizes` table.
//!
//! Usage: `kallsyms-gen [--all-symbols] [--absolute-percpu] [--symbol-sizes] in.map > out.S`
//!
//! The pipeline mirrors `scripts/kallsyms.c` stage by stage so the two can be
//! read side by side, one module per stage (the functions keep the C names):
//!
//! `read_map` → `shrink_table` → `make_percpus_absolute` → `sort_symbols` →
//! `record_relative_base` → `optimize_token_table` → `write_src`
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
    sort::record_relative_base(&mut table);
    let tokens = compress::optimize_token_table(&mut table);
    write_src::write_src(&mut table, &tokens, &opts);
}
