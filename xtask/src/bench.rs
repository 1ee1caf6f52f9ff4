//! `cargo xtask bench`: the project's figures in one report, measured side
//! by side in one run. It reports; it never fails on a slow machine.
//!
//! 1. Generator: Rust vs C on the same maps (the `vs_c` bench target).
//! 2. Kernel memory: every kallsyms table, patched vs baseline, per arch.
//! 3. Lookup cost in the guest: ns per lookup and per `%pS`, patched vs
//!    baseline (the probe module's `bench` file, via the `lookup-bench` probe).
//! 4. Cycle times: boot-to-results, warm rerun, edit-to-result.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::footprint::{kallsyms_footprint, Footprint};
use harness::kbuild::fmt_duration;
use harness::series::Variant;
use harness::source::{self, SourceSpec};
use harness::testrun::{self, Cell, RunOptions};
use harness::{layout, prereqs};
use serde_json::{json, Value};

use crate::flags::BenchArgs;
use crate::selection;

/// Boot-to-results in seconds, and (ns per lookup, ns per `%pS`) when the
/// `lookup-bench` probe reported them.
type BootSample = (f64, Option<(f64, f64)>);

/// Median and spread of a sample.
fn stats(mut xs: Vec<f64>) -> Value {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    };
    json!({ "runs": n, "median": median, "min": xs.first(), "max": xs.last() })
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "loadavg_at_start": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

pub fn run(args: BenchArgs) -> Result<i32> {
    let arches = selection::arches(&args.kernel)?;
    prereqs::ensure(&prereqs::Needs {
        arches: arches.clone(),
        debian_source: true,
        guest: true,
    })?;
    let mut report = json!({ "machine": machine(), "method": format!("{} runs per figure, medians with min-max", args.runs) });
    println!("machine: {}", report["machine"]);

    // 1. Generator.
    println!("\n== 1. generator: Rust kallsyms-gen vs C scripts/kallsyms ==");
    let out = Command::new("cargo")
        .current_dir(layout::project_root())
        .args(["bench", "--quiet", "-p", "kallsyms-gen", "--bench", "vs_c"])
        .env("KSH_BENCH_RUNS", args.runs.to_string())
        .env("KSH_MAPS_DIR", layout::cache_root().join("build"))
        .output()
        .context("running cargo bench -p kallsyms-gen")?;
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text.lines().filter(|l| !l.starts_with("BENCH-JSON: ")) {
        println!("{l}");
    }
    match text.lines().find_map(|l| l.strip_prefix("BENCH-JSON: ")) {
        Some(j) => {
            report["generator"] =
                serde_json::from_str(j).context("parsing the generator bench JSON")?
        }
        None => {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            report["generator"] =
                json!({ "error": format!("the generator bench failed ({})", out.status) });
        }
    }

    // 2 + 3 need the patched and the baseline kernels of each arch.
    let patched = source::prepare(&SourceSpec::Debian {
        variant: Variant::Patched,
    })?;
    let baseline = source::prepare(&SourceSpec::Debian {
        variant: Variant::Baseline,
    })?;
    let jobs = selection::jobs(&args.kernel);
    let config = args
        .kernel
        .configs
        .first()
        .cloned()
        .unwrap_or_else(|| "minimal".into());
    println!("\n== 2. kernel memory: kallsyms tables ({config}) ==");
    let mut memory = Vec::new();
    for &arch in &arches {
        let mut fps: Vec<Footprint> = Vec::new();
        for src in [&baseline, &patched] {
            let cell = Cell {
                arch,
                config: config.clone(),
                source: src,
            };
            let built = testrun::build_kernel(&cell, jobs)?;
            fps.push(kallsyms_footprint(&built.vmlinux)?);
        }
        let (base, pat) = (&fps[0], &fps[1]);
        let sizes = pat.size_tables();
        let per_sym = sizes as f64 / pat.num_syms as f64;
        let increase = 100.0 * (pat.total() as f64 - base.total() as f64) / base.total() as f64;
        println!(
            "{:<7} {} symbols: baseline {} B, patched {} B (+{:.1}%), kallsyms_sizes {} B = {:.2} B/symbol",
            arch.name,
            pat.num_syms,
            base.total(),
            pat.total(),
            increase,
            sizes,
            per_sym
        );
        for (t, b) in &pat.tables {
            println!("        {t:<26} {b:>9} B");
        }
        memory.push(json!({
            "arch": arch.name, "symbols": pat.num_syms, "baseline_bytes": base.total(), "patched_bytes": pat.total(),
            "increase_percent": increase, "sizes_bytes": sizes, "sizes_bytes_per_symbol": per_sym,
            "patched_tables": pat.tables, "baseline_tables": base.tables,
        }));
    }
    report["kernel_memory"] = json!(memory);

    // 3 + 4a: boot each kernel `runs` times, alternating patched and baseline.
    println!("\n== 3. lookup cost in the guest, and 4a. boot-to-results ==");
    let opts = RunOptions {
        accel: args.accel,
        jobs,
        expect_baseline_failures: false,
    };
    let mut lookups = Vec::new();
    let mut boots = Vec::new();
    for &arch in &arches {
        // Per kernel (baseline, patched): one (boot-to-results, lookup figures) per run.
        let mut samples: [Vec<BootSample>; 2] = [Vec::new(), Vec::new()];
        let mut accel = "";
        for _ in 0..args.runs {
            for (i, src) in [&baseline, &patched].into_iter().enumerate() {
                let cell = Cell {
                    arch,
                    config: config.clone(),
                    source: src,
                };
                let (_, times) = testrun::run_cell(&cell, &opts)?;
                let boot = times
                    .boot_to_results
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(f64::NAN);
                accel = times.accel.unwrap_or("");
                samples[i].push((boot, lookup_figures(&cell)));
            }
        }
        let lookup_ns = |i: usize, j: usize| -> Vec<f64> {
            samples[i]
                .iter()
                .filter_map(|(_, l)| l.map(|l| if j == 0 { l.0 } else { l.1 }))
                .collect()
        };
        let med = |v: Vec<f64>| stats(v)["median"].as_f64().unwrap_or(f64::NAN);
        let (bl, pl) = (med(lookup_ns(0, 0)), med(lookup_ns(1, 0)));
        let (bf, pf) = (med(lookup_ns(0, 1)), med(lookup_ns(1, 1)));
        println!(
            "{:<7} lookup: baseline {bl:.0} ns, patched {pl:.0} ns, ratio {:.3}; %pS: baseline {bf:.0} ns, patched {pf:.0} ns, ratio {:.3}",
            arch.name,
            pl / bl,
            pf / bf
        );
        lookups.push(json!({
            "arch": arch.name, "accel": accel, "lookup_ns": { "baseline": stats(lookup_ns(0, 0)), "patched": stats(lookup_ns(1, 0)) },
            "format_ns": { "baseline": stats(lookup_ns(0, 1)), "patched": stats(lookup_ns(1, 1)) },
            "lookup_ratio": pl / bl, "format_ratio": pf / bf,
        }));
        let pb: Vec<f64> = samples[1].iter().map(|s| s.0).collect();
        println!(
            "{:<7} boot-to-results (patched): {}",
            arch.name,
            stats(pb.clone())
        );
        boots.push(json!({ "arch": arch.name, "accel": accel, "boot_to_results_s": stats(pb) }));
    }
    report["guest_lookup"] = json!(lookups);
    report["boot_to_results"] = json!(boots);

    // 4b. Warm rerun of the main command, nothing changed.
    println!("\n== 4b. warm rerun of `cargo xtask test`, nothing changed ==");
    let arch_list: Vec<&str> = arches.iter().map(|a| a.name).collect();
    let mut warm = Vec::new();
    for _ in 0..args.runs {
        warm.push(time_command(&["test", "--arch", &arch_list.join(",")])?.as_secs_f64());
    }
    println!("warm rerun: {}", stats(warm.clone()));
    report["warm_rerun_s"] = stats(warm);

    // 4c. Edit-to-result after touching kernel/kallsyms.c in the patched tree.
    println!(
        "\n== 4c. edit-to-result: touch kernel/kallsyms.c, incremental build + boot + probes =="
    );
    let mut edit = Vec::new();
    for &arch in &arches {
        let mut xs = Vec::new();
        for _ in 0..args.runs {
            let f = std::fs::File::options()
                .write(true)
                .open(patched.tree.join("kernel/kallsyms.c"))?;
            f.set_modified(std::time::SystemTime::now())?;
            drop(f);
            xs.push(time_command(&["test", "--arch", arch.name])?.as_secs_f64());
        }
        println!("{:<7} edit-to-result: {}", arch.name, stats(xs.clone()));
        edit.push(json!({ "arch": arch.name, "edit_to_result_s": stats(xs) }));
    }
    report["edit_to_result"] = json!(edit);

    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nJSON written to {}", path.display());
    }
    Ok(0)
}

/// Lookup and `%pS` ns from the `lookup-bench` probe's diagnostics
/// (`# lookup_ns=N format_ns=M`), if the kernel ran it.
fn lookup_figures(cell: &Cell) -> Option<(f64, f64)> {
    let results = std::fs::read_to_string(cell.run_dir().join(harness::qemu::RESULTS_FILE)).ok()?;
    let line = results
        .lines()
        .find(|l| l.contains("lookup_ns=") && l.contains("format_ns="))?;
    let field = |k: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
    };
    Some((field("lookup_ns=")?, field("format_ns=")?))
}

/// Runs `cargo xtask ARGS` and returns its wall time. Through cargo, as a
/// user types it: cargo's own up-to-date check is part of the figure.
fn time_command(args: &[&str]) -> Result<Duration> {
    let started = Instant::now();
    let out = Command::new("cargo")
        .current_dir(layout::project_root())
        .arg("xtask")
        .args(args)
        .output()?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "`cargo xtask {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    eprintln!("  cargo xtask {}: {}", args.join(" "), fmt_duration(took));
    Ok(took)
}
