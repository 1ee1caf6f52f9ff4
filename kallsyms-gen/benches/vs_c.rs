//! `cargo bench -p kallsyms-gen`: the Rust generator against the C
//! `scripts/kallsyms` of a kernel line (6.12, or 7.3 with
//! `KSH_KERNEL_FORMAT=7.3 KSH_KERNEL_SRC=<7.3 tree>`, as the tests take
//! them) on a distro-size synthetic map (x86_64 and arm64 layouts), on the
//! committed real kernel maps and on the maps `KSH_BENCH_MAPS` lists (one
//! `NAME<TAB>PATH<TAB>OPTIONS` per line: `cargo xtask bench` names the
//! largest link map of each kernel line's builds with its link's options),
//! each with that line's options for a 64-bit kernel.
//!
//! C and Rust runs alternate, `KSH_BENCH_RUNS` (default 9) each per map.
//! Each run is a fresh child of a small helper process, reaped with
//! `wait4()`, which gives its own CPU time and peak RSS.
//! `KSH_BENCH_KEEP_MAPS=DIR` also writes the benchmarked maps to DIR. Printed per map: median wall and CPU time with the
//! min–max spread, the C/Rust ratios, peak RSS, and whether the outputs are
//! identical; then one `BENCH-JSON: {...}` line for tooling.

#[path = "../tests/common/mod.rs"]
mod common;

use common::synth::{self, Flavor};
use common::{c_tool, kernel_format, real_map_fixtures, scratch};
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

struct Sample {
    wall: f64,
    cpu: f64,
    maxrss_kb: i64,
    ok: bool,
}

/// Runs one tool in a fresh helper process (this bench binary re-executed
/// with `KSH_BENCH_HELPER=1`): a child spawned from this big process would
/// inherit its peak RSS through vfork/exec, a child of the small helper
/// reports its own.
fn run_once(bin: &Path, opts: &[&str], map: &Path, out: &Path) -> Sample {
    let o = Command::new(std::env::current_exe().unwrap())
        .env("KSH_BENCH_HELPER", "1")
        .arg(out)
        .arg(bin)
        .args(opts)
        .arg(map)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "bench helper failed");
    let text = String::from_utf8(o.stdout).unwrap();
    let f: Vec<&str> = text.split_whitespace().collect();
    Sample {
        wall: f[0].parse().unwrap(),
        cpu: f[1].parse().unwrap(),
        maxrss_kb: f[2].parse().unwrap(),
        ok: f[3] == "0",
    }
}

/// Helper mode: `OUT BIN ARGS...` — runs BIN with stdout to OUT, reaps it
/// with wait4() and prints "wall_s cpu_s maxrss_kib exit_status".
fn helper_main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = File::create(&args[0]).unwrap();
    let start = Instant::now();
    let child = Command::new(&args[1])
        .args(&args[2..])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 gets valid pointers to
    // locals and a pid of our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4 failed");
    std::mem::forget(child); // already reaped
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    println!(
        "{:.6} {:.6} {} {}",
        wall,
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_maxrss,
        code
    );
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

/// One line of C against Rust times: medians with their ranges, and C/Rust.
fn c_vs_rust(what: &str, c: &Stats, rust: &Stats) -> String {
    let range = |s: &Stats| format!("{:.3}s [{:.3}-{:.3}]", s.median, s.min, s.max);
    format!(
        "  {what} C {}  Rust {}  C/Rust {:.2}x",
        range(c),
        range(rust),
        c.median / rust.median
    )
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Stats {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn main() {
    if std::env::var_os("KSH_BENCH_HELPER").is_some() {
        return helper_main();
    }
    // `cargo bench` passes `--bench`; ignore arguments.
    let runs: usize = std::env::var("KSH_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9)
        .max(1);
    let c = c_tool();
    // The tool itself, its format first (not the tests' wrapper script:
    // a shell in front would be timed with it).
    let rust = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kallsyms-gen"));
    let format = kernel_format();
    let format_flag = format!("--format={format}");
    // A 64-bit kernel's options: 6.12 makes x86_64's zero-based percpu
    // symbols absolute, 7.3 stores every offset from _text.
    let (x86_64, arm64, fixture): (Vec<&str>, Vec<&str>, Vec<&str>) = match format {
        "6.12" => (
            vec!["--all-symbols", "--absolute-percpu"],
            vec!["--all-symbols"],
            // The committed maps come from UP test kernels: no --absolute-percpu.
            vec!["--all-symbols"],
        ),
        _ => (
            vec!["--all-symbols", "--pc-relative"],
            vec!["--all-symbols", "--pc-relative"],
            vec!["--all-symbols", "--pc-relative"],
        ),
    };

    let mut maps: Vec<(String, Vec<u8>, Vec<String>)> = vec![
        (
            "synthetic-x86_64".into(),
            synth::synth_map(Flavor::X86_64, synth::DISTRO_FUNCTIONS, 1),
            x86_64.iter().map(|s| s.to_string()).collect(),
        ),
        (
            "synthetic-arm64".into(),
            synth::synth_map(Flavor::Arm64, synth::DISTRO_FUNCTIONS, 2),
            arm64.iter().map(|s| s.to_string()).collect(),
        ),
    ];
    for (name, data) in real_map_fixtures() {
        if !data.is_empty() {
            maps.push((name, data, fixture.iter().map(|s| s.to_string()).collect()));
        }
    }
    // The harness's own link maps, as `cargo xtask bench` lists them.
    if let Ok(list) = std::env::var("KSH_BENCH_MAPS") {
        for line in list.lines().filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let [name, path, opts] = f[..] else {
                panic!("KSH_BENCH_MAPS: {line:?} is not NAME<TAB>PATH<TAB>OPTIONS");
            };
            let data = fs::read(path).unwrap_or_else(|e| panic!("KSH_BENCH_MAPS: {path}: {e}"));
            let opts = opts.split_whitespace().map(str::to_string).collect();
            maps.push((name.to_string(), data, opts));
        }
    }

    let mut json = Vec::new();
    println!(
        "kallsyms-gen vs C scripts/kallsyms (Linux {format}, {}), {runs} alternating runs each",
        c.display()
    );
    for (name, data, opts) in &maps {
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        let rust_opts: Vec<&str> = std::iter::once(format_flag.as_str())
            .chain(opts.iter().copied())
            .collect();
        let map = scratch(&format!("bench-{name}.map"));
        fs::write(&map, data).unwrap();
        if let Some(dir) = std::env::var_os("KSH_BENCH_KEEP_MAPS") {
            fs::write(Path::new(&dir).join(format!("{name}.map")), data).unwrap();
        }
        let (c_out, r_out) = (scratch("bench-c.S"), scratch("bench-rust.S"));
        let lines = data.iter().filter(|&&b| b == b'\n').count();
        let mut cs = Vec::new();
        let mut rs = Vec::new();
        let mut identical = true;
        for i in 0..runs {
            let cr = run_once(&c, &opts, &map, &c_out);
            let rr = run_once(&rust, &rust_opts, &map, &r_out);
            assert!(
                cr.ok && rr.ok,
                "{name}: a tool failed (C ok={}, Rust ok={})",
                cr.ok,
                rr.ok
            );
            if i == 0 || i == runs - 1 {
                identical &= fs::read(&c_out).unwrap() == fs::read(&r_out).unwrap();
            }
            cs.push(cr);
            rs.push(rr);
        }
        let cw = stats(cs.iter().map(|s| s.wall).collect());
        let rw = stats(rs.iter().map(|s| s.wall).collect());
        let cc = stats(cs.iter().map(|s| s.cpu).collect());
        let rc = stats(rs.iter().map(|s| s.cpu).collect());
        let cm = cs.iter().map(|s| s.maxrss_kb).max().unwrap();
        let rm = rs.iter().map(|s| s.maxrss_kb).max().unwrap();
        println!("\n{name} ({lines} lines, options {opts:?})");
        println!("{}", c_vs_rust("wall ", &cw, &rw));
        println!("{}", c_vs_rust("cpu  ", &cc, &rc));
        println!(
            "  peak RSS  C {} KiB  Rust {} KiB  Rust/C {:.2}",
            cm,
            rm,
            rm as f64 / cm as f64
        );
        println!("  outputs identical: {identical}");
        json.push(format!(
            "{{\"map\":\"{name}\",\"bytes\":{},\"lines\":{lines},\"options\":\"{}\",\"runs\":{runs},\
             \"c_wall_median_s\":{:.4},\"c_wall_min_s\":{:.4},\"c_wall_max_s\":{:.4},\
             \"rust_wall_median_s\":{:.4},\"rust_wall_min_s\":{:.4},\"rust_wall_max_s\":{:.4},\
             \"c_cpu_median_s\":{:.4},\"rust_cpu_median_s\":{:.4},\
             \"ratio_wall\":{:.3},\"ratio_cpu\":{:.3},\
             \"c_maxrss_kib\":{cm},\"rust_maxrss_kib\":{rm},\"identical\":{identical}}}",
            data.len(),
            opts.join(" "),
            cw.median,
            cw.min,
            cw.max,
            rw.median,
            rw.min,
            rw.max,
            cc.median,
            rc.median,
            cw.median / rw.median,
            cc.median / rc.median
        ));
        let _ = fs::remove_file(&map);
        let _ = fs::remove_file(&c_out);
        let _ = fs::remove_file(&r_out);
        assert!(identical, "{name}: outputs differ");
    }
    println!(
        "BENCH-JSON: {{\"bench\":\"kallsyms-gen-vs-c\",\"kernel\":\"{format}\",\"results\":[{}]}}",
        json.join(",")
    );
}
