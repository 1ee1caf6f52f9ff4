//! `cargo xtask bench`: the project's figures in one report, measured side
//! by side in one run. It reports; it never fails on a slow machine.
//!
//! 1. Generator: Rust vs C on the same maps (the `vs_c` bench target).
//! 2. Kernel memory: every kallsyms table, patched vs baseline, per arch.
//! 3. Lookup cost in the guest: ns per lookup and per `%pS`, patched vs
//!    baseline (the probe module's `bench` file, via the `lookup-bench` probe).
//! 4. Cycle times: null boot against boot-to-results (booted alternately,
//!    with per-probe times), warm rerun, edit-to-result.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::cell::{CellId, SourceKind, Toolchain};
use harness::kernel::prereqs;
use harness::kernel::series::Variant;
use harness::kernel::source::{self, SourceSpec};
use harness::layout;
use harness::proc::fmt_duration;
use harness::symbols::footprint::{kallsyms_footprint, Footprint};
use harness::testrun::{self, Cell, RunOptions};
use serde_json::{json, Value};

use crate::flags::{BenchArgs, BenchSection};
use crate::selection;

/// Rounds of `lookup-bench` per boot in the benchmark.
const LOOKUP_ROUNDS: u32 = 9;
/// How much longer a probe may take under the instruction clock (one
/// vCPU at a time, icount's bookkeeping): x86_64/minimal's lookup-bench
/// ran about 7 times as long as under multi-threaded TCG.
const INSTRUCTION_CLOCK_SLOWDOWN: u32 = 10;

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

/// Runs every step; on a failure names the step, keeps what was measured
/// so far (with the error) in the JSON report, and exits 1.
pub fn run(args: BenchArgs) -> Result<i32> {
    let mut report = json!({});
    let mut step = "setup";
    let result = run_steps(&args, &mut report, &mut step);
    let path = args.json.clone().unwrap_or_else(|| {
        layout::bench_dir().join(format!(
            "bench-{}.json",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ))
    });
    if let Err(e) = &result {
        report["error"] = json!({ "step": step, "message": format!("{e:#}") });
    }
    if let Some(dir) = path.parent() {
        layout::ensure_dir(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    match result {
        Ok(()) => {
            println!("\nJSON written to {}", path.display());
            Ok(0)
        }
        Err(e) => {
            eprintln!(
                "ksh bench: step \"{step}\" failed: {e:#}\nfigures measured before it, and this error, are in {}",
                path.display()
            );
            Ok(1)
        }
    }
}

fn run_steps(args: &BenchArgs, report: &mut Value, step: &mut &'static str) -> Result<()> {
    let arches = selection::arches(&args.kernel)?;
    prereqs::ensure(&prereqs::Needs {
        arches: arches.clone(),
        debian_source: true,
        guest: true,
        llvm: selection::needs_llvm(&args.kernel),
    })?;
    let want = |s: BenchSection| args.only.is_empty() || args.only.contains(&s);
    *report = json!({ "machine": machine(), "method": format!("{} runs per figure, medians with min-max", args.runs) });
    println!("machine: {}", report["machine"]);

    // 1. Generator.
    if want(BenchSection::Generator) {
        *step = "1. generator";
        println!("\n== 1. generator: Rust kallsyms-gen vs C scripts/kallsyms ==");
        let out = Command::new("cargo")
            .current_dir(layout::project_root())
            .args(["bench", "--quiet", "-p", "kallsyms-gen", "--bench", "vs_c"])
            .env("KSH_BENCH_RUNS", args.runs.to_string())
            .env("KSH_MAPS_DIR", layout::build_root())
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
    }
    // 2 + 3 need the patched and the baseline kernels of each arch.
    *step = "2. kernel memory (building the patched and baseline kernels)";
    let patched = source::prepare(&SourceSpec::Debian {
        variant: Variant::Patched,
    })?;
    let baseline = source::prepare(&SourceSpec::Debian {
        variant: Variant::Baseline,
    })?;
    let jobs = selection::jobs(&args.kernel);
    let (variant, toolchain) = selection::configs(&args.kernel)?
        .first()
        .cloned()
        .unwrap_or_else(|| ("minimal".into(), Toolchain::Gcc));
    let cell_id = |arch| CellId::new(arch, &variant, toolchain, SourceKind::Patched);
    let config = CellId::config_label(&variant, toolchain);
    // Symbols per arch (patched), for the per-10k-symbols figures.
    let mut symbols: Vec<u64> = Vec::new();
    if want(BenchSection::Memory) {
        println!("\n== 2. kernel memory: kallsyms tables ({config}) ==");
        let mut memory = Vec::new();
        for &arch in &arches {
            let mut fps: Vec<Footprint> = Vec::new();
            for src in [&baseline, &patched] {
                let cell = Cell::new(&cell_id(arch), src);
                let built = testrun::build_kernel(&cell, jobs)?;
                fps.push(kallsyms_footprint(&built.vmlinux)?);
            }
            let (base, pat) = (&fps[0], &fps[1]);
            symbols.push(pat.num_syms);
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
    }

    // 3. Boot each kernel `runs` times, alternating patched and baseline;
    // in each boot lookup-bench runs LOOKUP_ROUNDS rounds and reports
    // their median (one round of 10,000 lookups is ~25 ms under TCG, too
    // short against the host's noise).
    let opts = RunOptions {
        accel: args.accel,
        jobs,
        expect_baseline_failures: false,
        guest_params: vec![format!("{}={LOOKUP_ROUNDS}", ksh_proto::BENCH_ROUNDS_PARAM)],
        silence_limit: None,
        stream_console: false,
        gdb_port: None,
        instruction_clock: false,
    };
    if want(BenchSection::Lookups) {
        *step = "3. lookup cost in the guest";
        println!(
            "\n== 3. lookup cost in the guest ({} x {} lookups per boot, median; \
             wall clock, then an instruction clock) ==",
            LOOKUP_ROUNDS,
            ksh_proto::LOOKUP_BENCH_COUNT
        );
        let mut lookups = Vec::new();
        for &arch in &arches {
            let wall = lookup_boots(&cell_id(arch), [&baseline, &patched], &opts, args.runs)?;
            // The same boots with QEMU counting instructions: the guest's
            // clock is then its instruction count, so the figure does not
            // move with the host's load (the wall clock here is noise-bound
            // at several percent).
            let icount_opts = RunOptions {
                accel: harness::vm::accel::AccelChoice::Tcg,
                instruction_clock: true,
                // Boots under -icount run several times slower: only the
                // timing probe runs there.
                // One round: rounds do not differ under an instruction clock.
                guest_params: vec![
                    format!("{}=1", ksh_proto::BENCH_ROUNDS_PARAM),
                    format!("{}=lookup-bench", ksh_proto::ONLY_PROBES_PARAM),
                    format!(
                        "{}={INSTRUCTION_CLOCK_SLOWDOWN}",
                        ksh_proto::TIMEOUT_SCALE_PARAM
                    ),
                ],
                // lookup-bench reports once, at its end.
                silence_limit: Some(testrun::DEFAULT_SILENCE * INSTRUCTION_CLOCK_SLOWDOWN),
                ..opts.clone()
            };
            let counted = lookup_boots(
                &cell_id(arch),
                [&baseline, &patched],
                &icount_opts,
                args.runs,
            )?;
            let (bl, pl) = (median(&wall.lookup[0]), median(&wall.lookup[1]));
            let (bf, pf) = (median(&wall.format[0]), median(&wall.format[1]));
            let lookup_min_ratio = minimum(&wall.lookup[1]) / minimum(&wall.lookup[0]);
            let format_min_ratio = minimum(&wall.format[1]) / minimum(&wall.format[0]);
            println!(
                "{:<7} lookup: baseline {bl:.0} ns, patched {pl:.0} ns, ratio {:.3} (of minimums {lookup_min_ratio:.3}); \
                 %pS: baseline {bf:.0} ns, patched {pf:.0} ns, ratio {:.3} (of minimums {format_min_ratio:.3})",
                arch.name,
                pl / bl,
                pf / bf
            );
            let (sb, sp) = (median(&wall.sized[0]), median(&wall.sized[1]));
            println!(
                "{:<7} every sized symbol, in-kernel loop, wall clock: baseline {sb:.1} ns, patched {sp:.1} ns per lookup, ratio {:.3}; spread over boots: baseline {:.1}%, patched {:.1}%",
                arch.name,
                sp / sb,
                100.0 * spread(&wall.sized[0]),
                100.0 * spread(&wall.sized[1])
            );
            let per_insn = harness::vm::qemu::INSTRUCTION_CLOCK_NS;
            let (ib, ip) = (
                median(&counted.sized[0]) / per_insn,
                median(&counted.sized[1]) / per_insn,
            );
            println!(
                "{:<7} every sized symbol, in-kernel loop, instruction clock: baseline {ib:.1}, patched {ip:.1} instructions per lookup, ratio {:.3} (goal <= 1.05); spread over boots: baseline {:.2}%, patched {:.2}%",
                arch.name,
                ip / ib,
                100.0 * spread(&counted.sized[0]),
                100.0 * spread(&counted.sized[1])
            );
            // The random addresses differ from boot to boot, so these move
            // a little even under the instruction clock.
            let (icl, icf) = (
                median(&counted.lookup[1]) / median(&counted.lookup[0]),
                median(&counted.format[1]) / median(&counted.format[0]),
            );
            println!(
                "{:<7} random addresses, instruction clock: lookup ratio {icl:.3}, %pS ratio {icf:.3}; spread over boots: lookup {:.2}%/{:.2}%, %pS {:.2}%/{:.2}% (baseline/patched)",
                arch.name,
                100.0 * spread(&counted.lookup[0]),
                100.0 * spread(&counted.lookup[1]),
                100.0 * spread(&counted.format[0]),
                100.0 * spread(&counted.format[1])
            );
            lookups.push(json!({
                "arch": arch.name, "accel": wall.accel,
                "sized_lookup_ns": { "baseline": stats(wall.sized[0].clone()), "patched": stats(wall.sized[1].clone()) },
                "sized_lookup_ratio": sp / sb,
                "sized_lookup_instructions": {
                    "baseline": stats(counted.sized[0].iter().map(|x| x / per_insn).collect()),
                    "patched": stats(counted.sized[1].iter().map(|x| x / per_insn).collect()),
                },
                "sized_lookup_instruction_ratio": ip / ib,
                "instruction_clock_lookup_ratio": icl, "instruction_clock_format_ratio": icf,
                "lookup_ns": { "baseline": stats(wall.lookup[0].clone()), "patched": stats(wall.lookup[1].clone()) },
                "format_ns": { "baseline": stats(wall.format[0].clone()), "patched": stats(wall.format[1].clone()) },
                "lookup_ratio": pl / bl, "format_ratio": pf / bf,
                "lookup_ratio_of_minimums": lookup_min_ratio, "format_ratio_of_minimums": format_min_ratio,
            }));
        }
        report["guest_lookup"] = json!(lookups);
    }

    // 4. The null boot (same kernel and initramfs, `/init` powers off at
    // once) against the full run, booted alternately so both see the same
    // host load; boot-to-results is judged as a multiple of the null boot.
    let mut null_sum = 0.0;
    if want(BenchSection::Boot) || want(BenchSection::Rerun) {
        *step = "4. null boot vs boot-to-results";
        println!("\n== 4. null boot vs boot-to-results (patched, {config}, booted alternately) ==");
        let null_opts = RunOptions {
            guest_params: vec![ksh_proto::NULL_BOOT_PARAM.to_string()],
            ..opts.clone()
        };
        let full_opts = RunOptions {
            guest_params: Vec::new(),
            ..opts.clone()
        };
        let mut null_figures = Vec::new();
        for (k, &arch) in arches.iter().enumerate() {
            let cell = Cell::new(&cell_id(arch), &patched);
            let (mut null, mut full) = (Vec::new(), Vec::new());
            let mut probe_ms: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
            let mut guest_ms = Vec::new();
            for _ in 0..args.runs {
                let (_, t) = testrun::run_cell(&cell, &null_opts)?;
                null.push(
                    t.boot_to_results
                        .context("the null boot wrote no completion record")?
                        .as_secs_f64(),
                );
                let (report, t) = testrun::run_cell(&cell, &full_opts)?;
                if let Some(bad) = report.cases.iter().find(|c| c.status.is_failure()) {
                    bail!(
                    "{}: a case failed in the timed run ({}); the figure would not be of a passing run",
                    cell.name(),
                    bad.name
                );
                }
                full.push(
                    t.boot_to_results
                        .context("the full run wrote no completion record")?
                        .as_secs_f64(),
                );
                let results =
                    std::fs::read_to_string(cell.run_dir().join(harness::vm::qemu::RESULTS_FILE))?;
                for (name, ms) in probe_times(&results) {
                    if name == "ksh" {
                        guest_ms.push(ms);
                    } else {
                        probe_ms.entry(name).or_default().push(ms);
                    }
                }
            }
            let med = |v: &[f64]| stats(v.to_vec())["median"].as_f64().unwrap_or(f64::NAN);
            let (n, f) = (med(&null), med(&full));
            null_sum += n;
            let syms = match symbols.get(k) {
                Some(&n) => n,
                None => kallsyms_footprint(&testrun::build_kernel(&cell, jobs)?.vmlinux)?.num_syms,
            };
            let per_10k = med(&guest_ms) / (syms as f64 / 10_000.0);
            println!(
            "{:<7} null boot {n:.2} s, boot-to-results {f:.2} s, ratio {:.2} (goal <= 1.5); probes {:.0} ms in the guest = {per_10k:.0} ms per 10k symbols ({} symbols)",
            arch.name,
            f / n,
            med(&guest_ms),
            syms
        );
            let per_probe: serde_json::Map<String, Value> = probe_ms
                .iter()
                .map(|(p, v)| (p.clone(), json!(med(v))))
                .collect();
            println!(
                "        per probe (ms, median): {}",
                Value::Object(per_probe.clone())
            );
            null_figures.push(json!({
                "arch": arch.name, "null_boot_s": stats(null), "boot_to_results_s": stats(full),
                "ratio_of_medians": f / n, "guest_probes_ms": stats(guest_ms),
                "guest_ms_per_10k_symbols": per_10k, "probe_ms_median": per_probe,
            }));
        }
        report["null_boot"] = json!(null_figures);
    }

    if want(BenchSection::Rerun) {
        *step = "4a/4b. warm rerun";
        // 4a + 4b. Warm reruns of the main command, nothing changed; each
        // prints every cell's boot-to-results, the default probe set's.
        println!(
            "\n== 4a/4b. warm rerun of `cargo xtask test` (nothing changed) and boot-to-results =="
        );
        let arch_list: Vec<&str> = arches.iter().map(|a| a.name).collect();
        let mut warm = Vec::new();
        let mut boot: Vec<Vec<f64>> = vec![Vec::new(); arches.len()];
        for _ in 0..args.runs {
            let (took, stderr) = time_command(&["test", "--arch", &arch_list.join(",")])?;
            warm.push(took.as_secs_f64());
            for (k, arch) in arches.iter().enumerate() {
                if let Some(b) = boot_to_results(&stderr, &cell_id(arch).name()) {
                    boot[k].push(b);
                }
            }
        }
        let warm_med = stats(warm.clone())["median"].as_f64().unwrap_or(f64::NAN);
        println!(
            "warm rerun: {} = {:.2} x (sum of null boots {null_sum:.2} s + 2 s) (goal <= 2)",
            stats(warm.clone()),
            warm_med / (null_sum + 2.0)
        );
        report["warm_rerun_s"] = stats(warm);
        report["warm_rerun_vs_null_boots_plus_2s"] = json!(warm_med / (null_sum + 2.0));
        let mut boots = Vec::new();
        for (k, arch) in arches.iter().enumerate() {
            println!(
                "{:<7} boot-to-results: {}",
                arch.name,
                stats(boot[k].clone())
            );
            boots.push(json!({ "arch": arch.name, "boot_to_results_s": stats(boot[k].clone()) }));
        }
        report["boot_to_results"] = json!(boots);
    }

    if want(BenchSection::Edit) {
        *step = "4c. edit-to-result";
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
                xs.push(
                    time_command(&["test", "--arch", arch.name])?
                        .0
                        .as_secs_f64(),
                );
            }
            println!("{:<7} edit-to-result: {}", arch.name, stats(xs.clone()));
            edit.push(json!({ "arch": arch.name, "edit_to_result_s": stats(xs) }));
        }
        report["edit_to_result"] = json!(edit);
    }
    Ok(())
}

/// The `lookup-bench` figures of `runs` boots of each kernel (baseline,
/// patched), booted alternately so both see the same host load.
struct LookupBoots {
    accel: &'static str,
    /// ns (or instructions) per lookup of 10,000 addresses, per boot.
    lookup: [Vec<f64>; 2],
    /// ns per `%pS` of the same addresses, per boot.
    format: [Vec<f64>; 2],
    /// ns per lookup of every sized symbol's start and last byte, one
    /// in-kernel loop repeated LOOKUP_ROUNDS times per boot (median).
    sized: [Vec<f64>; 2],
}

fn lookup_boots(
    id: &CellId,
    sources: [&source::KernelSource; 2],
    opts: &RunOptions,
    runs: usize,
) -> Result<LookupBoots> {
    let mut out = LookupBoots {
        accel: "",
        lookup: Default::default(),
        format: Default::default(),
        sized: Default::default(),
    };
    for _ in 0..runs {
        for (i, src) in sources.into_iter().enumerate() {
            let cell = Cell::new(id, src);
            let (report, times) = testrun::run_cell(&cell, opts)?;
            // A kernel that did not build has no figures: say so, with the
            // build case's own diagnostics, not that a figure is missing.
            let build_case = cell.case_name(testrun::BUILD_CASE);
            if let Some(harness::cell::Status::Fail { detail: why, .. }) = report
                .cases
                .iter()
                .find(|c| c.name == build_case)
                .map(|c| &c.status)
            {
                bail!("{}: the kernel did not build: {why}", cell.name());
            }
            out.accel = times.accel.unwrap_or("");
            if let Some((l, f)) = lookup_figures(&cell) {
                out.lookup[i].push(l);
                out.format[i].push(f);
            }
            match sized_figure(&cell) {
                Some(x) => out.sized[i].push(x),
                None => bail!(
                    "{}: lookup-bench reported no sized_lookup_ns= figure (see {})",
                    cell.name(),
                    cell.run_dir()
                        .join(harness::vm::qemu::RESULTS_FILE)
                        .display()
                ),
            }
        }
    }
    Ok(out)
}

fn median(v: &[f64]) -> f64 {
    stats(v.to_vec())["median"].as_f64().unwrap_or(f64::NAN)
}

/// Under TCG a whole boot can run 30% slow when the host is busy; the
/// fastest boot of each kernel is the least disturbed, so the ratio of
/// minimums is printed next to the ratio of medians.
fn minimum(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::INFINITY, f64::min)
}

/// (max - min) / median.
fn spread(v: &[f64]) -> f64 {
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (hi - minimum(v)) / median(v)
}

/// Lookup and `%pS` ns from the `lookup-bench` probe's diagnostics
/// (`# lookup_ns=N format_ns=M`), if the kernel ran it.
fn lookup_figures(cell: &Cell) -> Option<(f64, f64)> {
    let results =
        std::fs::read_to_string(cell.run_dir().join(harness::vm::qemu::RESULTS_FILE)).ok()?;
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

/// `# PROBE: N ms` lines of a results file (and `# ksh: probes took N ms
/// inside the guest` as probe `ksh`).
fn probe_times(results: &str) -> Vec<(String, f64)> {
    results
        .lines()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("# ksh: probes took ") {
                let ms = rest.split(' ').next()?.parse().ok()?;
                return Some(("ksh".to_string(), ms));
            }
            let (name, rest) = l.strip_prefix("# ")?.split_once(": ")?;
            let ms = rest.strip_suffix(" ms")?.parse().ok()?;
            (!name.contains(' ')).then(|| (name.to_string(), ms))
        })
        .collect()
}

/// ns per lookup of every sized symbol from the `lookup-bench` probe's
/// diagnostics (`# sized_lookup_ns=N ...`).
fn sized_figure(cell: &Cell) -> Option<f64> {
    let results =
        std::fs::read_to_string(cell.run_dir().join(harness::vm::qemu::RESULTS_FILE)).ok()?;
    results
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("sized_lookup_ns="))
        })
        .and_then(|v| v.parse().ok())
}

/// Runs `cargo xtask ARGS` and returns its wall time and stderr. Through
/// cargo, as a user types it: cargo's own up-to-date check is part of the
/// figure.
fn time_command(args: &[&str]) -> Result<(Duration, String)> {
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
    Ok((took, String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Seconds from `ksh: CELL: ... boot-to-results 2.5s` in a test run's stderr.
fn boot_to_results(stderr: &str, cell: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("ksh: {cell}: ")) && l.contains("boot-to-results"))?;
    line.rsplit("boot-to-results ")
        .next()?
        .trim()
        .trim_end_matches('s')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_probe_times_from_results() {
        let r = "KTAP version 1\n    # Subtest: sizes\n    # 3 lookups in 9 ms\n# sizes: 412 ms\n\
                 # boot: 179 ms\n# ksh: probes took 7490 ms inside the guest\n";
        assert_eq!(
            probe_times(r),
            vec![
                ("sizes".to_string(), 412.0),
                ("boot".to_string(), 179.0),
                ("ksh".to_string(), 7490.0)
            ]
        );
    }

    #[test]
    fn reads_boot_to_results_from_the_summary_line() {
        let err = "ksh: kernel source: x\n\
                   ksh: x86_64/minimal: build 0.3s (up to date), VM 2.6s on tcg, boot-to-results 2.5s\n\
                   ksh: arm64/minimal: build 0.2s (up to date), VM 1.8s on tcg, boot-to-results 1.7s\n";
        assert_eq!(boot_to_results(err, "x86_64/minimal"), Some(2.5));
        assert_eq!(boot_to_results(err, "arm64/minimal"), Some(1.7));
        assert_eq!(boot_to_results(err, "arm64/kaslr"), None);
    }
}
