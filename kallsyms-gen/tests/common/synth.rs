//! Deterministic generator of distro-size `nm -n` style maps built from
//! real kernel identifiers (`tests/fixtures/kernel-idents.txt.gz`).
//!
//! The layout imitates a `.tmp_vmlinux*.syms` map: percpu symbols, `_text`,
//! `_stext`..`_etext` with functions (`__pfx_` padding symbols, `.cold` /
//! `.isra.0` / `.constprop.0` clones, syscall wrappers, weak symbols,
//! aliases at one address, leading-underscore variants, linker-provided
//! `__start_*`/`__stop_*`/`*_start`/`*_end` names, assembly labels without
//! a size), a symbol sitting exactly at `_etext`, rodata, `_sinittext`..
//! `_einittext`, data/bss, and a few absolute/undefined/debug symbols.

use super::kernel_idents;

/// splitmix64: tiny deterministic PRNG.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavor {
    /// Zero-based percpu section, text at 0xffffffff81000000.
    X86_64,
    /// Everything in the kernel VA range, percpu inside .data.
    Arm64,
}

#[derive(Clone, Debug)]
pub struct Sym {
    pub addr: u64,
    /// `None` for symbols that `nm -S` prints without a size column.
    pub size: Option<u64>,
    pub typ: u8,
    pub name: Vec<u8>,
}

/// Renders symbols as map lines; with `sizes`, sized symbols get the
/// `nm -S` size column (16 hex digits, like nm on 64-bit targets).
pub fn render(syms: &[Sym], sizes: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(syms.len() * 48);
    for s in syms {
        match (sizes, s.size) {
            (true, Some(sz)) => {
                out.extend_from_slice(format!("{:016x} {:016x} ", s.addr, sz).as_bytes())
            }
            _ => out.extend_from_slice(format!("{:016x} ", s.addr).as_bytes()),
        }
        out.push(s.typ);
        out.push(b' ');
        out.extend_from_slice(&s.name);
        out.push(b'\n');
    }
    out
}

fn sym(addr: u64, size: Option<u64>, typ: u8, name: impl Into<Vec<u8>>) -> Sym {
    Sym {
        addr,
        size,
        typ,
        name: name.into(),
    }
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    v.extend_from_slice(b);
    v
}

/// Generates a map with about `functions` function symbols (plus the
/// decorations, data, init and percpu symbols around them), sorted by
/// address like `nm -n`.
pub fn synth_syms(flavor: Flavor, functions: usize, seed: u64) -> Vec<Sym> {
    let idents = kernel_idents();
    let mut rng = Rng(seed ^ 0x6b616c6c73796d73);
    let mut syms: Vec<Sym> = Vec::new();
    let name_of = |rng: &mut Rng| -> Vec<u8> { rng.pick(&idents).clone() };

    let (percpu_base, text_base, data_gap) = match flavor {
        Flavor::X86_64 => (0u64, 0xffff_ffff_8100_0000u64, 0x20_0000u64),
        Flavor::Arm64 => (0u64, 0xffff_8000_8000_0000u64, 0x10_0000u64),
    };

    // Percpu section first on x86_64 (zero based).
    let mut percpu: Vec<Sym> = Vec::new();
    let mut pc = percpu_base;
    percpu.push(sym(pc, None, b'D', b"__per_cpu_start"));
    percpu.push(sym(pc, Some(0x28), b'D', b"fixed_percpu_data"));
    pc += 0x1000;
    for _ in 0..700 {
        let sz = 8 * (1 + rng.below(64));
        let t = *rng.pick(b"dDdDbB");
        percpu.push(sym(pc, Some(sz), t, name_of(&mut rng)));
        pc += sz.next_multiple_of(8);
    }
    pc = pc.next_multiple_of(0x1000);
    percpu.push(sym(pc, None, b'D', b"__per_cpu_end"));
    if flavor == Flavor::X86_64 {
        syms.append(&mut percpu);
    }

    // Text.
    let mut a = text_base;
    syms.push(sym(a, None, b'T', b"_text"));
    syms.push(sym(a, Some(0x40), b'T', b"startup_64"));
    syms.push(sym(a + 0x40, None, b't', b"secondary_startup_64"));
    a += 0x1000;
    syms.push(sym(a, None, b'T', b"_stext"));
    syms.push(sym(a, None, b'T', b"__start_text"));
    let sys_prefixes: [&[u8]; 4] = [b"__x64_sys_", b"__ia32_sys_", b"__se_sys_", b"__do_sys_"];
    let clone_suffix: [&[u8]; 5] = [
        b".cold",
        b".isra.0",
        b".constprop.0",
        b".part.0",
        b".constprop.0.isra.0",
    ];
    let mut made = 0;
    while made < functions {
        let base = name_of(&mut rng);
        let span = if rng.chance(90) { 24 } else { 400 };
        let size = 16 * (1 + rng.below(span));
        let typ = match rng.below(100) {
            0..=54 => b'T',
            55..=94 => b't',
            _ => b'W',
        };
        let pfx = rng.chance(45);
        if pfx {
            syms.push(sym(a, Some(16), typ, cat(b"__pfx_", &base)));
            a += 16;
            made += 1;
        }
        syms.push(sym(a, Some(size), typ, base.clone()));
        made += 1;
        match rng.below(100) {
            // weak and strong at one address (weak sorts last)
            0..=1 => syms.push(sym(a, Some(size), b'W', cat(&base, b"_weak"))),
            // alias with the same name length and type
            2..=4 => syms.push(sym(a, Some(size), typ, cat(b"__alias_", &base))),
            // leading underscore variants at the same address
            5..=6 => {
                syms.push(sym(a, Some(size), typ, cat(b"__", &base)));
                syms.push(sym(a, Some(size), typ, cat(b"_", &base)));
            }
            // linker-script-provide look-alikes at the same address
            7 => {
                syms.push(sym(a, None, b'T', cat(b"__start_", &base)));
                syms.push(sym(a, None, b'T', cat(&cat(b"__", &base), b"_end")));
            }
            // an assembly label without size inside the function
            8..=9 => syms.push(sym(a + size / 2, None, b't', cat(&base, b"_L1"))),
            _ => {}
        }
        a += size;
        if rng.chance(4) {
            let suffix = *rng.pick(&clone_suffix);
            let csize = 16 * (1 + rng.below(20));
            syms.push(sym(a, Some(csize), b't', cat(&base, suffix)));
            a += csize;
            made += 1;
        }
        if rng.chance(3) {
            for p in sys_prefixes {
                let s = 16 * (1 + rng.below(8));
                if rng.chance(40) {
                    syms.push(sym(a, Some(16), b'T', cat(b"__pfx_", &cat(p, &base))));
                    a += 16;
                    made += 1;
                }
                syms.push(sym(a, Some(s), b'T', cat(p, &base)));
                a += s;
                made += 1;
            }
        }
        if rng.chance(1) {
            // gap with an orphaned body (no symbol)
            a += 16 * (1 + rng.below(30));
        }
    }
    syms.push(sym(a, Some(16), b'T', b"__indirect_thunk_end_marker"));
    syms.push(sym(a, None, b'T', b"_etext"));
    syms.push(sym(a, None, b'T', b"__stop_text"));
    a += 16;
    syms.push(sym(a, None, b'T', b"after_etext_symbol"));

    // Rodata with section boundary symbols.
    a = (a + data_gap).next_multiple_of(0x1000);
    syms.push(sym(a, None, b'R', b"__start_rodata"));
    for sec in [
        &b"__ex_table"[..],
        b"__param",
        b"__modver",
        b"__tracepoints_ptrs",
        b"__bug_table",
        b"_ftrace_events",
    ] {
        syms.push(sym(a, None, b'R', cat(b"__start_", sec)));
        for _ in 0..rng.below(20) {
            let s = 8 * (1 + rng.below(16));
            syms.push(sym(a, Some(s), *rng.pick(b"rR"), name_of(&mut rng)));
            a += s;
        }
        syms.push(sym(a, None, b'R', cat(b"__stop_", sec)));
        a += 64;
    }
    for _ in 0..functions / 12 {
        let s = 8 * (1 + rng.below(64));
        let mut name = name_of(&mut rng);
        if rng.chance(20) {
            name = cat(b"__func__.", &name);
        } else if rng.chance(10) {
            name = cat(&name, b".0");
        }
        syms.push(sym(a, Some(s), *rng.pick(b"rrR"), name));
        a += s;
    }
    syms.push(sym(a, None, b'R', b"__end_rodata"));

    // Init text.
    a = (a + data_gap).next_multiple_of(0x1000);
    syms.push(sym(a, None, b'T', b"_sinittext"));
    for _ in 0..functions / 25 {
        let s = 16 * (1 + rng.below(30));
        let base = name_of(&mut rng);
        let name = if rng.chance(30) {
            cat(b"__initstub__kmod_", &cat(&base, b"__123_456_init6"))
        } else {
            cat(&base, b"_init")
        };
        syms.push(sym(a, Some(s), *rng.pick(b"tttT"), name));
        a += s;
    }
    syms.push(sym(a, Some(16), b't', b"last_init_function_at_end"));
    syms.push(sym(a, None, b'T', b"_einittext"));

    // Data and bss (with the percpu section inside on arm64).
    a = (a + data_gap).next_multiple_of(0x1000);
    syms.push(sym(a, None, b'D', b"_sdata"));
    if flavor == Flavor::Arm64 {
        for mut s in percpu {
            s.addr += a;
            syms.push(s);
        }
        a += pc + 0x1000;
    }
    for _ in 0..functions / 6 {
        let s = 8 * (1 + rng.below(32));
        let t = *rng.pick(b"dddDDbbBBVv");
        let mut name = name_of(&mut rng);
        if rng.chance(5) {
            name = cat(&name, b".1");
        }
        syms.push(sym(a, Some(s), t, name));
        a += s;
    }
    syms.push(sym(a, None, b'B', b"_end"));

    // Absolute, undefined and debug symbols (mostly ignored).
    syms.push(sym(0x1000, None, b'a', b"some_absolute_symbol"));
    syms.push(sym(0, None, b'u', b"unique_global"));
    syms.push(sym(0, None, b'n', b"debug_thing"));
    syms.push(sym(text_base + 0x2000, None, b'N', b".debug_note_symbol"));

    // nm -n order: by address, stable.
    syms.sort_by_key(|s| s.addr);
    syms
}

/// `synth_syms` rendered as a 3-column map.
pub fn synth_map(flavor: Flavor, functions: usize, seed: u64) -> Vec<u8> {
    render(&synth_syms(flavor, functions, seed), false)
}

/// Number of functions for a distro-size map (≥ 150,000 symbols kept by
/// the default filter).
pub const DISTRO_FUNCTIONS: usize = 150_000;
