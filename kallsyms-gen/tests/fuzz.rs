//! Differential fuzzing against the C tool: random and mutated maps, all
//! option combinations of the kernel line's tool (`KSH_KERNEL_FORMAT`:
//! 6.12's `--absolute-percpu`, 7.3's `--pc-relative`), and with a patched
//! tree's tool (`KSH_KERNEL_SRC`) each again with the series'
//! `--symbol-sizes [--compact-sizes]` on maps with `nm -S` size columns.
//! Bounded to ~20 s by default; set `KSH_FUZZ_SECS` for longer runs and
//! `KSH_FUZZ_SEED` to replay. A failing input is saved under the cargo
//! target tmp dir and its seed printed.

mod common;

use common::synth::{self, Flavor, Rng};
use common::*;
use std::fs;
use std::time::{Duration, Instant};

const SPECIAL: [&[u8]; 16] = [
    b"_text",
    b"_stext",
    b"_etext",
    b"_sinittext",
    b"_einittext",
    b"__per_cpu_start",
    b"__per_cpu_end",
    b"__start_sec",
    b"__stop_sec",
    b"__gp",
    b"__kernel_sigtramp",
    b"__end_x_y",
    b"__foo_start",
    b"__foo_end",
    // The previous link pass's size tables (--compact-sizes reads them).
    b"kallsyms_size_exc",
    b"kallsyms_seqs_of_names",
];

/// Output read from each tool per run (see `run_capped`): far more than a
/// few hundred symbols' tables take.
const OUTPUT_CAP: usize = 16 << 20;

fn random_name(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(12) {
        return rng.pick(&SPECIAL).to_vec();
    }
    let len = match rng.below(100) {
        0..=2 => 505 + rng.below(12) as usize, // around KSYM_NAME_LEN
        3..=5 => 100 + rng.below(200) as usize,
        6 => 0,
        _ => 1 + rng.below(24) as usize,
    };
    let alphabet: &[u8] = match rng.below(4) {
        0 => b"ab_",
        1 => b"abcdefghijklmnopqrstuvwxyz_0123456789",
        2 => b"_.$abcXYZ",
        _ => b"ab",
    };
    let mut v: Vec<u8> = (0..len).map(|_| *rng.pick(alphabet)).collect();
    if rng.chance(5) && !v.is_empty() {
        let i = rng.below(v.len() as u64) as usize;
        v[i] = 0x80 + rng.below(0x80) as u8; // non-UTF-8
    }
    if rng.chance(10) {
        let mut p = rng
            .pick(&[&b"__"[..], b"_", b"__pfx_", b"__start_", b"__stop_", b"___"])
            .to_vec();
        p.extend_from_slice(&v);
        v = p;
    }
    v
}

/// An `nm -S` size column: mostly small, sometimes zero-padded like nm's,
/// sometimes past `UINT_MAX` (which both tools refuse).
fn random_size(rng: &mut Rng) -> String {
    let v = match rng.below(20) {
        0 => 0,
        1 => u64::from(u32::MAX) + rng.below(2),
        2 => rng.next(),
        3..=5 => rng.below(0x10_0000),
        _ => rng.below(0x200),
    };
    match rng.below(4) {
        0 => format!("{v:016x}"),
        1 => format!("{v:08x}"),
        _ => format!("{v:x}"),
    }
}

/// A random map; with `sized`, most lines carry an `nm -S` size column.
fn random_map(rng: &mut Rng, sized: bool) -> Vec<u8> {
    let sized = sized && rng.chance(50);
    let n = rng.below(300) as usize;
    let nbases = if rng.chance(70) { 1 } else { 1 + rng.below(5) };
    let bases: Vec<u64> = (0..nbases)
        .map(|_| {
            let r = rng.next();
            *rng.pick(&[
                0u64,
                0x1000,
                0xffff_ffff_8100_0000,
                0xffff_8000_8000_0000,
                r,
            ])
        })
        .collect();
    let mut out = Vec::new();
    let mut addr = *rng.pick(&bases);
    for _ in 0..n {
        if rng.chance(10) {
            addr = *rng.pick(&bases);
        } else if !rng.chance(20) {
            addr = addr.wrapping_add(rng.below(64));
        }
        let typ = if rng.chance(3) {
            rng.below(0x80) as u8
        } else {
            *rng.pick(b"TTTTtttWwDdBbRrVvAaUuNn")
        };
        if typ == b'\n' {
            continue;
        }
        out.extend_from_slice(format!("{addr:x} ").as_bytes());
        if sized && !rng.chance(20) {
            out.extend_from_slice(format!("{} ", random_size(rng)).as_bytes());
        }
        out.push(typ);
        out.push(b' ');
        let name = random_name(rng);
        out.extend(name.iter().filter(|&&b| b != b'\n'));
        out.push(b'\n');
    }
    out
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let len = data.len() as u64;
        // byte-level damage (ops 0-3) mostly yields format errors: rarer
        let op = if rng.chance(30) {
            rng.below(4)
        } else {
            4 + rng.below(7)
        };
        match op {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                data.remove(i);
            }
            1 => {
                let i = rng.below(len + 1) as usize;
                let b = *rng.pick(b" \t\r\n\0xT_a09f\xff\x80-+");
                data.insert(i, b);
            }
            2 if len > 0 => {
                let i = rng.below(len) as usize;
                data[i] = rng.below(256) as u8;
            }
            3 => {
                // truncate (possibly mid-line, no final newline)
                let i = rng.below(len + 1) as usize;
                data.truncate(i);
            }
            4..=6 => {
                // line-level: duplicate / delete / swap
                let mut lines: Vec<Vec<u8>> = data
                    .split_inclusive(|&b| b == b'\n')
                    .map(|l| l.to_vec())
                    .collect();
                if lines.is_empty() {
                    continue;
                }
                let i = rng.below(lines.len() as u64) as usize;
                let j = rng.below(lines.len() as u64) as usize;
                match rng.below(3) {
                    0 => {
                        let l = lines[i].clone();
                        lines.insert(j, l);
                    }
                    1 => {
                        lines.remove(i);
                    }
                    _ => lines.swap(i, j),
                }
                *data = lines.concat();
            }
            7 => {
                // change a type char / make it NUL
                let starts: Vec<usize> = data
                    .windows(3)
                    .enumerate()
                    .filter(|(_, w)| w[0] == b' ' && w[2] == b' ')
                    .map(|(i, _)| i + 1)
                    .collect();
                if let Some(&p) = starts.get(rng.below(starts.len() as u64 + 1) as usize) {
                    data[p] = if rng.chance(30) {
                        0
                    } else {
                        rng.below(0x80) as u8
                    };
                }
            }
            8 => {
                // last line "ADDR " without newline (stale getline buffer)
                data.extend_from_slice(format!("{:x} ", rng.below(0x100)).as_bytes());
            }
            9 => data.extend_from_slice(b"\r\n"),
            _ => {
                let i = rng.below(len + 1) as usize;
                let name = random_name(rng);
                let line = [
                    format!("\n{:x} T ", rng.next() >> rng.below(64)).as_bytes(),
                    &name[..],
                    b"\n",
                ]
                .concat();
                let line: Vec<u8> = line
                    .into_iter()
                    .filter(|&b| b != b'\n')
                    .chain([b'\n'])
                    .collect();
                data.splice(i..i, line);
            }
        }
    }
}

fn window(rng: &mut Rng, map: &[u8], max_lines: usize) -> Vec<u8> {
    let lines: Vec<&[u8]> = map.split_inclusive(|&b| b == b'\n').collect();
    if lines.is_empty() {
        return Vec::new();
    }
    let n = 1 + rng.below(max_lines.min(lines.len()) as u64) as usize;
    let start = rng.below((lines.len() - n + 1) as u64) as usize;
    let mut v: Vec<u8> = Vec::new();
    // keep the range markers most of the time so that symbols survive
    if rng.chance(70) {
        for l in &lines {
            if SPECIAL[..7]
                .iter()
                .any(|s| l.ends_with(&[b" ", *s, b"\n"].concat()))
            {
                v.extend_from_slice(l);
            }
        }
    }
    for l in &lines[start..start + n] {
        v.extend_from_slice(l);
    }
    v
}

#[test]
fn differential_fuzz() {
    let secs: u64 = std::env::var("KSH_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed0: u64 = std::env::var("KSH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0000);
    let replay_one =
        std::env::var("KSH_FUZZ_SEED").is_ok() && std::env::var("KSH_FUZZ_SECS").is_err();

    let c = c_tool();
    let rust = rust_bin();
    let sizes = c_knows_sizes();
    let option_sets = sizes_option_sets();
    let mut corpus: Vec<Vec<u8>> = vec![
        synth::synth_map(Flavor::Arm64, 400, 3),
        synth::synth_map(Flavor::X86_64, 400, 4),
    ];
    if sizes {
        // `.tmp_vmlinuxN.sized.syms`: what the series feeds the tool.
        for (flavor, seed) in [(Flavor::Arm64, 5), (Flavor::X86_64, 6)] {
            corpus.push(synth::render(&synth::synth_syms(flavor, 400, seed), true));
        }
    }
    corpus.extend(real_map_fixtures().into_iter().map(|(_, d)| d));

    let deadline = Instant::now() + Duration::from_secs(secs);
    let path = scratch("fuzz.map");
    let stripped_path = scratch("fuzz-stripped.map");
    let (mut iters, mut ok, mut failed, mut oversized) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let seed = seed0 + iters;
        let mut rng = Rng(seed);
        let mut data = match rng.below(3) {
            0 => random_map(&mut rng, sizes),
            _ => {
                let base = rng.pick(&corpus).clone();
                window(&mut rng, &base, 400)
            }
        };
        if rng.chance(50) {
            mutate(&mut rng, &mut data);
        }
        fs::write(&path, &data).unwrap();
        for opts in &option_sets {
            let opts = &opts[..];
            let co = run_capped(&c, opts, &path, OUTPUT_CAP);
            let ro = run_capped(&rust, opts, &path, OUTPUT_CAP);
            let res = std::panic::catch_unwind(|| {
                if co.truncated || ro.truncated {
                    // Both must still be writing, the same bytes so far.
                    assert!(
                        co.truncated && ro.truncated,
                        "fuzz {opts:?}: only {} wrote more than {OUTPUT_CAP} bytes",
                        if co.truncated { "C" } else { "Rust" }
                    );
                    assert!(
                        co.out.stdout == ro.out.stdout,
                        "fuzz {opts:?}: the first {OUTPUT_CAP} bytes differ"
                    );
                    return Outcome::BothOk;
                }
                let (co, ro) = (&co.out, &ro.out);
                if !opts.contains(&"--symbol-sizes") && !co.status.success() && ro.status.success()
                {
                    // Maybe an nm -S line appeared by mutation: the C tool
                    // must then agree on the map without the size column.
                    // (With --symbol-sizes both read the column: no excuse.)
                    let s = strip_sizes(&data);
                    if s != data {
                        fs::write(&stripped_path, &s).unwrap();
                        let co2 = run(&c, opts, &stripped_path);
                        return check_pair(&co2, ro, opts, "fuzz (4-column)");
                    }
                }
                check_pair(co, ro, opts, "fuzz")
            });
            if co.truncated {
                oversized += 1;
            }
            match res {
                Ok(Outcome::BothOk) => ok += 1,
                Ok(Outcome::BothFailed) => failed += 1,
                Err(e) => {
                    let keep = tmp_dir().join(format!("fuzz-fail-{seed}.map"));
                    fs::write(&keep, &data).unwrap();
                    eprintln!("fuzz failure: seed {seed} (KSH_FUZZ_SEED={seed}), options {opts:?}, input saved to {}", keep.display());
                    std::panic::resume_unwind(e);
                }
            }
        }
        iters += 1;
        if replay_one || Instant::now() >= deadline {
            break;
        }
    }
    let _ = fs::remove_file(&path);
    let _ = fs::remove_file(&stripped_path);
    eprintln!(
        "fuzz: Linux {} C tool {}, {} option sets{}: {iters} inputs, {ok} identical outputs \
         ({oversized} of them compared on their first {OUTPUT_CAP} bytes), {failed} matching failures",
        kernel_format(),
        c.display(),
        option_sets.len(),
        if sizes { " (with the size tables)" } else { "" }
    );
    assert!(iters > 0);
}
