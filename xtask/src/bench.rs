//! `cargo xtask bench`: the project's figures in one report, measured side
//! by side in one run. It reports; it never fails on a slow machine.
//!
//! 1. Generator: Rust vs C on the same maps (the `vs_c` bench target), for
//!    each kernel line with a patched build in the cache (its tree's C
//!    tool, its options; the largest link map of its builds side by side),
//!    and the size tables' bytes per symbol of each line's minimal builds.
//! 2. Kernel memory: every kallsyms table, patched vs baseline, per arch.
//! 3. Lookup cost in the guest: ns per lookup and per `%pS`, patched vs
//!    baseline (the probe module's `bench` file, via the `lookup-bench` probe).
//! 4. Cycle times: null boot against boot-to-results (booted alternately,
//!    with per-probe times), warm rerun, edit-to-result.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::cell::arch::ArchProfile;
use harness::cell::Status;
use harness::cell::{CellId, Kernel, SourceKey, SourceKind, Toolchain};
use harness::kernel::prereqs;
use harness::kernel::series::Variant;
use harness::kernel::source::{self, KernelSource, SourceSpec};
use harness::layout;
use harness::process::fmt_duration;
use harness::results::ktap;
use harness::symbols::footprint::{kallsyms_footprint, Footprint};
use harness::symbols::kernel_of_build_dir;
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

/// The bench builds Debian's patched and baseline kernels and boots them.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::Debian,
    guest: true,
};

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
    let want = |s: BenchSection| args.only.is_empty() || args.only.contains(&s);
    *report = json!({ "machine": machine(), "method": format!("{} runs per figure, medians with min-max", args.runs) });
    println!("machine: {}", report["machine"]);

    if want(BenchSection::Generator) {
        // Reads the cache's builds, builds nothing: no kernel prerequisites.
        *step = "1. generator";
        report["generator"] = generator(args.runs)?;
    }
    let kernel_sections = [
        BenchSection::Memory,
        BenchSection::Lookups,
        BenchSection::Boot,
        BenchSection::Rerun,
        BenchSection::Edit,
    ];
    if !kernel_sections.into_iter().any(want) {
        return Ok(());
    }
    let arches = selection::arches(&args.kernel)?;
    let kernel = selection::kernel(&args.kernel)?;
    NEEDS.ensure(&selection::selected(&args.kernel, arches.clone(), kernel))?;
    // 2 + 3 need the patched and the baseline kernels of each arch.
    *step = "2. kernel memory (building the patched and baseline kernels)";
    let mut bench = Bench::prepare(args, arches)?;
    if want(BenchSection::Memory) {
        report["kernel_memory"] = bench.kernel_memory()?;
    }
    if want(BenchSection::Lookups) {
        *step = "3. lookup cost in the guest";
        report["guest_lookup"] = bench.lookup_cost()?;
    }
    if want(BenchSection::Boot) || want(BenchSection::Rerun) {
        *step = "4. null boot vs boot-to-results";
        report["null_boot"] = bench.null_boots()?;
    }
    if want(BenchSection::Rerun) {
        *step = "4a/4b. warm rerun";
        bench.warm_rerun(report)?;
    }
    if want(BenchSection::Edit) {
        *step = "4c. edit-to-result";
        report["edit_to_result"] = bench.edit_to_result()?;
    }
    Ok(())
}

/// The options of the series' link (both lines' `link-vmlinux.sh` feed
/// `nm -S` maps and ask for the compact size tables) besides the kernel
/// line's own ([`Kernel::generator_flags`]).
const SERIES_GENERATOR_FLAGS: [&str; 2] = ["--symbol-sizes", "--compact-sizes"];

/// The patched `minimal` builds of one kernel line found in the cache.
struct LineBuilds {
    kernel: Kernel,
    /// Its patched tree (the builds' `source` link): the C tool's source.
    tree: PathBuf,
    /// (arch, build dir), in `arch::ALL` order.
    dirs: Vec<(&'static ArchProfile, PathBuf)>,
}

impl LineBuilds {
    /// The largest `nm -S` link map of the line's builds (what its
    /// generators were run on), with its build dir.
    fn largest_map(&self) -> Option<(PathBuf, &Path, u64)> {
        self.dirs
            .iter()
            .flat_map(|(_, d)| {
                (1..=3).map(move |n| (d.join(format!(".tmp_vmlinux{n}.sized.syms")), d.as_path()))
            })
            .filter_map(|(m, d)| Some((std::fs::metadata(&m).ok()?.len(), m, d)))
            .max_by_key(|(len, _, _)| *len)
            .map(|(len, m, d)| (m, d, len))
    }
}

/// Every kernel line's patched `minimal` builds in the cache (read only:
/// nothing is built or prepared). A build dir counts when its `vmlinux`
/// exists, and its kernel line is the one its tree's `Makefile` names;
/// of several trees of a line (two Debian versions), the most recently
/// linked.
fn line_builds() -> Result<Vec<LineBuilds>> {
    let root = layout::build_root();
    let keys: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| {
                SourceKey::parse(&e.file_name().to_string_lossy())
                    .is_some_and(|k| k.kind == SourceKind::Patched)
            })
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    };
    let linked = |d: &Path| {
        std::fs::metadata(d.join("vmlinux"))
            .and_then(|m| m.modified())
            .ok()
    };
    let mut lines = Vec::new();
    for kernel in Kernel::all() {
        let mut best: Option<(std::time::SystemTime, LineBuilds)> = None;
        for key in &keys {
            let mut dirs = Vec::new();
            for &arch in harness::cell::arch::ALL {
                let id = CellId::new(arch, "minimal", Toolchain::Gcc, SourceKind::Patched)
                    .of_kernel(kernel);
                let dir = key.join(id.dir_name());
                if dir.join("vmlinux").is_file() && kernel_of_build_dir(&dir)? == kernel {
                    dirs.push((arch, dir));
                }
            }
            let Some(newest) = dirs.iter().filter_map(|(_, d)| linked(d)).max() else {
                continue;
            };
            let tree = dirs[0]
                .1
                .join("source")
                .canonicalize()
                .with_context(|| format!("{}: no source link", dirs[0].1.display()))?;
            if best.as_ref().is_none_or(|(t, _)| newest > *t) {
                best = Some((newest, LineBuilds { kernel, tree, dirs }));
            }
        }
        lines.extend(best.map(|(_, l)| l));
    }
    Ok(lines)
}

/// Section 1: the generator bench (`vs_c`) once per kernel line with
/// patched builds in the cache (or 6.12's tarball without), its human
/// lines passed through and its figures from its `BENCH-JSON:` line; then
/// the largest link map of each line and the size tables' bytes per
/// symbol of each line's builds, side by side.
fn generator(runs: usize) -> Result<Value> {
    let lines = line_builds()?;
    let mut per_kernel = Vec::new();
    let mut largest = Vec::new();
    for kernel in Kernel::all() {
        let builds = lines.iter().find(|l| l.kernel == kernel);
        println!("\n== 1. generator: Rust kallsyms-gen vs C scripts/kallsyms, Linux {kernel} ==");
        let mut cmd = Command::new("cargo");
        cmd.current_dir(layout::project_root())
            .args(["bench", "--quiet", "-p", "kallsyms-gen", "--bench", "vs_c"])
            .env("KSH_BENCH_RUNS", runs.to_string())
            .env("KSH_KERNEL_FORMAT", kernel.line().generator_format)
            .env_remove("KSH_KERNEL_SRC")
            .env_remove("KSH_BENCH_MAPS");
        let mut map_name = None;
        match builds {
            Some(b) => {
                cmd.env("KSH_KERNEL_SRC", &b.tree);
                if let Some((map, dir, _)) = b.largest_map() {
                    let config = std::fs::read_to_string(dir.join(".config"))
                        .with_context(|| format!("reading {}/.config", dir.display()))?;
                    let mut flags = kernel.generator_flags(&config);
                    flags.extend(SERIES_GENERATOR_FLAGS);
                    let name = format!(
                        "largest-{}-{}",
                        dir.file_name().unwrap_or_default().to_string_lossy(),
                        map.file_name().unwrap_or_default().to_string_lossy()
                    );
                    cmd.env(
                        "KSH_BENCH_MAPS",
                        format!("{name}\t{}\t{}\n", map.display(), flags.join(" ")),
                    );
                    map_name = Some(name);
                }
            }
            // 6.12's pristine C tool comes from Debian's tarball.
            None if kernel == Kernel::V6_12 => {}
            None => {
                println!(
                    "no patched minimal build of Linux {kernel} in {}: nothing to compare with \
                     (`cargo xtask build --kernel {kernel}` makes one)",
                    layout::build_root().display()
                );
                per_kernel.push(json!({ "kernel": kernel.version(), "missing": "no patched minimal build in the cache" }));
                continue;
            }
        }
        let out = cmd
            .output()
            .context("running cargo bench -p kallsyms-gen")?;
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text.lines().filter(|l| !l.starts_with("BENCH-JSON: ")) {
            println!("{l}");
        }
        let figures: Value = match text.lines().find_map(|l| l.strip_prefix("BENCH-JSON: ")) {
            Some(j) => serde_json::from_str(j).context("parsing the generator bench JSON")?,
            None => {
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                json!({ "error": format!("the generator bench failed ({})", out.status) })
            }
        };
        if let Some(name) = &map_name {
            if let Some(r) = figures["results"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["map"] == json!(name)))
            {
                largest.push(json!({ "kernel": kernel.version(), "figures": r }));
            }
        }
        per_kernel.push(json!({
            "kernel": kernel.version(),
            "c_tool_source": builds.map_or_else(|| "Debian's tarball".to_string(), |b| b.tree.display().to_string()),
            "bench": figures,
        }));
    }
    print_largest(&largest);
    let size_tables = size_tables(&lines)?;
    Ok(json!({ "kernels": per_kernel, "largest_map": largest, "size_tables": size_tables }))
}

/// The largest link map of each kernel line, one line each.
fn print_largest(largest: &[Value]) {
    if largest.is_empty() {
        return;
    }
    println!("\n== 1. the largest link map of each kernel line (the link's options, medians) ==");
    for l in largest {
        let f = &l["figures"];
        println!(
            "Linux {:<5} {} ({} lines, {} bytes; {}): C {:.3}s [{:.3}-{:.3}]  Rust {:.3}s [{:.3}-{:.3}]  C/Rust {:.2}x wall, {:.2}x cpu; identical: {}",
            l["kernel"].as_str().unwrap_or("?"),
            f["map"].as_str().unwrap_or("?"),
            f["lines"],
            f["bytes"],
            f["options"].as_str().unwrap_or(""),
            f["c_wall_median_s"].as_f64().unwrap_or(f64::NAN),
            f["c_wall_min_s"].as_f64().unwrap_or(f64::NAN),
            f["c_wall_max_s"].as_f64().unwrap_or(f64::NAN),
            f["rust_wall_median_s"].as_f64().unwrap_or(f64::NAN),
            f["rust_wall_min_s"].as_f64().unwrap_or(f64::NAN),
            f["rust_wall_max_s"].as_f64().unwrap_or(f64::NAN),
            f["ratio_wall"].as_f64().unwrap_or(f64::NAN),
            f["ratio_cpu"].as_f64().unwrap_or(f64::NAN),
            f["identical"]
        );
    }
}

/// The size tables each kernel line's generator wrote into its patched
/// minimal builds, per arch: bytes per symbol, side by side.
fn size_tables(lines: &[LineBuilds]) -> Result<Value> {
    if lines.is_empty() {
        return Ok(json!([]));
    }
    println!(
        "\n== 1. size tables of the patched minimal builds (kallsyms_size_*, bytes per symbol) =="
    );
    let mut rows = Vec::new();
    for &arch in harness::cell::arch::ALL {
        let mut row = format!("{:<7}", arch.name);
        for l in lines {
            let Some((_, dir)) = l.dirs.iter().find(|(a, _)| a.name == arch.name) else {
                row.push_str(&format!("  Linux {}: no build", l.kernel));
                continue;
            };
            let fp = kallsyms_footprint(&dir.join("vmlinux"))?;
            let bytes = fp.size_tables();
            let per_symbol = bytes as f64 / fp.num_syms as f64;
            row.push_str(&format!(
                "  Linux {}: {per_symbol:.3} B/symbol ({bytes} B, {} symbols)",
                l.kernel, fp.num_syms
            ));
            rows.push(json!({
                "arch": arch.name, "kernel": l.kernel.version(), "symbols": fp.num_syms,
                "size_table_bytes": bytes, "bytes_per_symbol": per_symbol, "tables": fp.tables,
            }));
        }
        println!("{row}");
    }
    Ok(json!(rows))
}

/// What the kernel steps (2-4) share: the selection, both kernels'
/// sources, and the figures one step leaves for a later one.
struct Bench<'a> {
    args: &'a BenchArgs,
    arches: Vec<&'static ArchProfile>,
    /// The config variant and toolchain of the benched cells.
    config: (String, Toolchain),
    jobs: usize,
    patched: KernelSource,
    baseline: KernelSource,
    /// Boots with `lookup-bench` at LOOKUP_ROUNDS rounds.
    opts: RunOptions,
    /// Symbols per arch (patched), for the per-10k-symbols figures.
    symbols: Vec<u64>,
    /// The null boots' medians, summed over the arches (the warm rerun's
    /// yardstick).
    null_sum: f64,
}

impl<'a> Bench<'a> {
    fn prepare(args: &'a BenchArgs, arches: Vec<&'static ArchProfile>) -> Result<Self> {
        let kernel = selection::kernel(&args.kernel)?;
        let patched = source::prepare(&SourceSpec::Debian {
            kernel,
            variant: Variant::Patched,
        })?;
        let baseline = source::prepare(&SourceSpec::Debian {
            kernel,
            variant: Variant::Baseline,
        })?;
        let jobs = selection::jobs(&args.kernel);
        let config = selection::configs(&args.kernel)?
            .first()
            .cloned()
            .unwrap_or_else(|| ("minimal".into(), Toolchain::Gcc));
        // 3. Boot each kernel `runs` times, alternating patched and
        // baseline; in each boot lookup-bench runs LOOKUP_ROUNDS rounds
        // and reports their median (one round of 10,000 lookups is ~25 ms
        // under TCG, too short against the host's noise).
        let opts = RunOptions {
            accel: args.accel,
            jobs,
            guest_params: vec![format!("{}={LOOKUP_ROUNDS}", ksh_proto::BENCH_ROUNDS_PARAM)],
            ..RunOptions::default()
        };
        Ok(Bench {
            args,
            arches,
            config,
            jobs,
            patched,
            baseline,
            opts,
            symbols: Vec::new(),
            null_sum: 0.0,
        })
    }

    /// The benched cell of `arch`.
    fn cell_id(&self, arch: &'static ArchProfile) -> CellId {
        let (variant, toolchain) = &self.config;
        CellId::new(arch, variant, *toolchain, SourceKind::Patched).of_kernel(self.patched.kernel)
    }

    /// The config label of the benched cells (`minimal`, `minimal-llvm`).
    fn label(&self) -> String {
        CellId::config_label(&self.config.0, self.config.1)
    }

    fn cell<'s>(&self, arch: &'static ArchProfile, source: &'s KernelSource) -> Cell<'s> {
        Cell::new(&self.cell_id(arch), source)
    }

    /// Section 2: every kallsyms table of the baseline and the patched
    /// `vmlinux`.
    fn kernel_memory(&mut self) -> Result<Value> {
        println!(
            "\n== 2. kernel memory: kallsyms tables ({}) ==",
            self.label()
        );
        let mut memory = Vec::new();
        for &arch in &self.arches {
            let mut fps: Vec<Footprint> = Vec::new();
            for src in [&self.baseline, &self.patched] {
                let built = testrun::build_kernel(&self.cell(arch, src), self.jobs)?;
                fps.push(kallsyms_footprint(&built.vmlinux)?);
            }
            let (base, pat) = (&fps[0], &fps[1]);
            self.symbols.push(pat.num_syms);
            memory.push(memory_figures(arch, base, pat));
        }
        Ok(json!(memory))
    }

    /// Section 3: `lookup-bench`'s figures, wall clock then instruction
    /// clock, patched against baseline.
    fn lookup_cost(&self) -> Result<Value> {
        println!(
            "\n== 3. lookup cost in the guest ({} x {} lookups per boot, median; \
             wall clock, then an instruction clock) ==",
            LOOKUP_ROUNDS,
            ksh_proto::LOOKUP_BENCH_COUNT
        );
        // The same boots with QEMU counting instructions: the guest's
        // clock is then its instruction count, so the figure does not move
        // with the host's load (the wall clock here is noise-bound at
        // several percent).
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
            ..self.opts.clone()
        };
        let mut lookups = Vec::new();
        for &arch in &self.arches {
            let sources = [&self.baseline, &self.patched];
            let id = self.cell_id(arch);
            let wall = lookup_boots(&id, sources, &self.opts, self.args.runs)?;
            let counted = lookup_boots(&id, sources, &icount_opts, self.args.runs)?;
            lookups.push(lookup_figures(arch, &wall, &counted));
        }
        Ok(json!(lookups))
    }

    /// Section 4: the null boot (same kernel and initramfs, `/init` powers
    /// off at once) against the full run, booted alternately so both see
    /// the same host load; boot-to-results is judged as a multiple of the
    /// null boot.
    fn null_boots(&mut self) -> Result<Value> {
        println!(
            "\n== 4. null boot vs boot-to-results (patched, {}, booted alternately) ==",
            self.label()
        );
        let null_opts = RunOptions {
            guest_params: vec![ksh_proto::NULL_BOOT_PARAM.to_string()],
            ..self.opts.clone()
        };
        let full_opts = RunOptions {
            guest_params: Vec::new(),
            ..self.opts.clone()
        };
        let mut null_figures = Vec::new();
        for (k, &arch) in self.arches.iter().enumerate() {
            let cell = self.cell(arch, &self.patched);
            let mut boots = NullBoots::default();
            for _ in 0..self.args.runs {
                boots.null_boot(&cell, &null_opts)?;
                boots.full_run(&cell, &full_opts)?;
            }
            let syms = match self.symbols.get(k) {
                Some(&n) => n,
                None => {
                    kallsyms_footprint(&testrun::build_kernel(&cell, self.jobs)?.vmlinux)?.num_syms
                }
            };
            self.null_sum += median(&boots.null);
            null_figures.push(boots.figures(arch, syms));
        }
        Ok(json!(null_figures))
    }

    /// Sections 4a and 4b: warm reruns of the main command, nothing changed; each
    /// reports every cell's boot-to-results, the default probe set's
    /// (its `--times-json`).
    fn warm_rerun(&self, report: &mut Value) -> Result<()> {
        println!(
            "\n== 4a/4b. warm rerun of `cargo xtask test` (nothing changed) and boot-to-results =="
        );
        let arch_list: Vec<&str> = self.arches.iter().map(|a| a.name).collect();
        let times_file =
            std::env::temp_dir().join(format!("ksh-{}-bench-times.json", std::process::id()));
        let mut warm = Vec::new();
        let mut boot: Vec<Vec<f64>> = vec![Vec::new(); self.arches.len()];
        for _ in 0..self.args.runs {
            let took = time_command(
                &[
                    "test",
                    "--kernel",
                    self.patched.kernel.version(),
                    "--arch",
                    &arch_list.join(","),
                ],
                Some(&times_file),
            )?;
            warm.push(took.as_secs_f64());
            let times = read_times(&times_file)?;
            for (k, arch) in self.arches.iter().enumerate() {
                if let Some(b) = boot_to_results(&times, &self.cell_id(arch).name()) {
                    boot[k].push(b);
                }
            }
        }
        let _ = std::fs::remove_file(&times_file);
        let warm_med = median(&warm);
        let null_sum = self.null_sum;
        println!(
            "warm rerun: {} = {:.2} x (sum of null boots {null_sum:.2} s + 2 s) (goal <= 2)",
            stats(warm.clone()),
            warm_med / (null_sum + 2.0)
        );
        report["warm_rerun_s"] = stats(warm);
        report["warm_rerun_vs_null_boots_plus_2s"] = json!(warm_med / (null_sum + 2.0));
        let mut boots = Vec::new();
        for (k, arch) in self.arches.iter().enumerate() {
            println!(
                "{:<7} boot-to-results: {}",
                arch.name,
                stats(boot[k].clone())
            );
            boots.push(json!({ "arch": arch.name, "boot_to_results_s": stats(boot[k].clone()) }));
        }
        report["boot_to_results"] = json!(boots);
        Ok(())
    }

    /// Section 4c: edit-to-result after touching kernel/kallsyms.c in the patched
    /// tree.
    fn edit_to_result(&self) -> Result<Value> {
        println!(
            "\n== 4c. edit-to-result: touch kernel/kallsyms.c, incremental build + boot + probes =="
        );
        let mut edit = Vec::new();
        for &arch in &self.arches {
            let mut xs = Vec::new();
            for _ in 0..self.args.runs {
                let f = std::fs::File::options()
                    .write(true)
                    .open(self.patched.tree.join("kernel/kallsyms.c"))?;
                f.set_modified(std::time::SystemTime::now())?;
                drop(f);
                let kernel = self.patched.kernel.version();
                let args = ["test", "--kernel", kernel, "--arch", arch.name];
                xs.push(time_command(&args, None)?.as_secs_f64());
            }
            println!("{:<7} edit-to-result: {}", arch.name, stats(xs.clone()));
            edit.push(json!({ "arch": arch.name, "edit_to_result_s": stats(xs) }));
        }
        Ok(json!(edit))
    }
}

/// Prints one arch's table sizes (2.) and returns them as JSON.
fn memory_figures(arch: &ArchProfile, base: &Footprint, pat: &Footprint) -> Value {
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
    json!({
        "arch": arch.name, "symbols": pat.num_syms, "baseline_bytes": base.total(), "patched_bytes": pat.total(),
        "increase_percent": increase, "sizes_bytes": sizes, "sizes_bytes_per_symbol": per_sym,
        "patched_tables": pat.tables, "baseline_tables": base.tables,
    })
}

/// Prints one arch's lookup cost (3.) from its wall-clock and
/// instruction-clock boots and returns it as JSON.
fn lookup_figures(arch: &ArchProfile, wall: &LookupBoots, counted: &LookupBoots) -> Value {
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
    let [wall_b, wall_p] = spreads(&wall.sized);
    println!(
        "{:<7} every sized symbol, in-kernel loop, wall clock: baseline {sb:.1} ns, patched {sp:.1} ns per lookup, ratio {:.3}; spread over boots: baseline {wall_b:.1}%, patched {wall_p:.1}%",
        arch.name,
        sp / sb,
    );
    let per_insn = harness::vm::qemu::INSTRUCTION_CLOCK_NS;
    let (ib, ip) = (
        median(&counted.sized[0]) / per_insn,
        median(&counted.sized[1]) / per_insn,
    );
    let [counted_b, counted_p] = spreads(&counted.sized);
    println!(
        "{:<7} every sized symbol, in-kernel loop, instruction clock: baseline {ib:.1}, patched {ip:.1} instructions per lookup, ratio {:.3} (goal <= 1.05); spread over boots: baseline {counted_b:.2}%, patched {counted_p:.2}%",
        arch.name,
        ip / ib,
    );
    // The random addresses differ from boot to boot, so these move a
    // little even under the instruction clock.
    let (icl, icf) = (
        median(&counted.lookup[1]) / median(&counted.lookup[0]),
        median(&counted.format[1]) / median(&counted.format[0]),
    );
    let ([lookup_b, lookup_p], [format_b, format_p]) =
        (spreads(&counted.lookup), spreads(&counted.format));
    println!(
        "{:<7} random addresses, instruction clock: lookup ratio {icl:.3}, %pS ratio {icf:.3}; spread over boots: lookup {lookup_b:.2}%/{lookup_p:.2}%, %pS {format_b:.2}%/{format_p:.2}% (baseline/patched)",
        arch.name,
    );
    json!({
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
    })
}

/// The figures of one arch's alternating null boots and full runs (4.).
#[derive(Default)]
struct NullBoots {
    /// Seconds to the completion record, per boot.
    null: Vec<f64>,
    full: Vec<f64>,
    /// Each probe's time in the guest (ms), per full run.
    probe_ms: std::collections::BTreeMap<String, Vec<f64>>,
    /// All probes' time in the guest (ms), per full run.
    guest_ms: Vec<f64>,
}

impl NullBoots {
    fn null_boot(&mut self, cell: &Cell, opts: &RunOptions) -> Result<()> {
        let (_, t) = testrun::run_cell(cell, opts)?;
        self.null.push(
            t.boot_to_results
                .context("the null boot wrote no completion record")?
                .as_secs_f64(),
        );
        Ok(())
    }

    /// A full run, which must pass: its figures would not be of a passing
    /// run otherwise.
    fn full_run(&mut self, cell: &Cell, opts: &RunOptions) -> Result<()> {
        let (report, t) = testrun::run_cell(cell, opts)?;
        if let Some(bad) = report.cases.iter().find(|c| c.status.is_failure()) {
            bail!(
                "{}: a case failed in the timed run ({}); the figure would not be of a passing run",
                cell.name(),
                bad.name
            );
        }
        self.full.push(
            t.boot_to_results
                .context("the full run wrote no completion record")?
                .as_secs_f64(),
        );
        if let Some(ms) = t.guest_probes {
            self.guest_ms.push(ms.as_millis() as f64);
        }
        for (name, ms) in probe_times(&results_of(cell)?) {
            self.probe_ms.entry(name).or_default().push(ms);
        }
        Ok(())
    }

    /// Prints the arch's line (`syms`: its symbol count) and returns its
    /// figures as JSON.
    fn figures(self, arch: &ArchProfile, syms: u64) -> Value {
        let (n, f) = (median(&self.null), median(&self.full));
        let per_10k = median(&self.guest_ms) / (syms as f64 / 10_000.0);
        println!(
            "{:<7} null boot {n:.2} s, boot-to-results {f:.2} s, ratio {:.2} (goal <= 1.5); probes {:.0} ms in the guest = {per_10k:.0} ms per 10k symbols ({} symbols)",
            arch.name,
            f / n,
            median(&self.guest_ms),
            syms
        );
        let per_probe: serde_json::Map<String, Value> = self
            .probe_ms
            .iter()
            .map(|(p, v)| (p.clone(), json!(median(v))))
            .collect();
        println!(
            "        per probe (ms, median): {}",
            Value::Object(per_probe.clone())
        );
        json!({
            "arch": arch.name, "null_boot_s": stats(self.null), "boot_to_results_s": stats(self.full),
            "ratio_of_medians": f / n, "guest_probes_ms": stats(self.guest_ms),
            "guest_ms_per_10k_symbols": per_10k, "probe_ms_median": per_probe,
        })
    }
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
    sources: [&KernelSource; 2],
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
            if let Some(Status::Fail { detail: why, .. }) = report
                .cases
                .iter()
                .find(|c| c.name == build_case)
                .map(|c| &c.status)
            {
                bail!("{}: the kernel did not build: {why}", cell.name());
            }
            out.accel = times.accel.unwrap_or("");
            if let Some((l, f)) = lookup_figures_of(&times) {
                out.lookup[i].push(l);
                out.format[i].push(f);
            }
            match sized_figure(&results_of(&cell)?) {
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

/// The spread of the baseline's and the patched kernel's figures, in %.
fn spreads(v: &[Vec<f64>; 2]) -> [f64; 2] {
    [100.0 * spread(&v[0]), 100.0 * spread(&v[1])]
}

/// The number after `key` among the words of a diagnostic line.
fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

/// The measured case whose figures the bench reads.
const LOOKUP_BENCH: (&str, &str) = ("lookup-bench", "measured");

/// Lookup and `%pS` ns: the figure the harness returned for
/// `lookup-bench/measured` (`lookup_ns=N format_ns=M ...`), if the kernel
/// ran it.
fn lookup_figures_of(times: &testrun::CellTimes) -> Option<(f64, f64)> {
    let case = format!("{}/{}", LOOKUP_BENCH.0, LOOKUP_BENCH.1);
    let (_, figure) = times.measured.iter().find(|(c, _)| *c == case)?;
    Some((field(figure, "lookup_ns=")?, field(figure, "format_ns=")?))
}

/// The KTAP report of the cell's newest run.
fn results_of(cell: &Cell) -> Result<ktap::Report> {
    let path = cell.run_dir().join(harness::vm::qemu::RESULTS_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ktap::parse(&text, ksh_proto::COMPLETION_RECORD))
}

/// Each probe's time in the guest: the `# PROBE: N ms` note that closes
/// its block, before its result line.
fn probe_times(report: &ktap::Report) -> Vec<(String, f64)> {
    report
        .tests
        .iter()
        .filter_map(|t| {
            let ms = t.diagnostics.iter().find_map(|d| {
                let note = d.trim().strip_prefix("# ")?;
                note.strip_prefix(t.name.as_str())?
                    .strip_prefix(": ")?
                    .strip_suffix(" ms")?
                    .parse()
                    .ok()
            })?;
            Some((t.name.clone(), ms))
        })
        .collect()
}

/// ns per lookup of every sized symbol: `lookup-bench/measured`'s
/// `# sized_lookup_ns=N ...` note.
fn sized_figure(report: &ktap::Report) -> Option<f64> {
    report
        .find(&[LOOKUP_BENCH.0, LOOKUP_BENCH.1])?
        .diagnostics
        .iter()
        .find_map(|d| field(d, "sized_lookup_ns="))
}

/// Runs `cargo xtask ARGS` and returns its wall time; with `times`, the
/// run writes its cells' figures there (`--times-json`). Through cargo, as
/// a user types it: cargo's own up-to-date check is part of the figure.
fn time_command(args: &[&str], times: Option<&Path>) -> Result<Duration> {
    let started = Instant::now();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(layout::project_root())
        .arg("xtask")
        .args(args);
    if let Some(path) = times {
        cmd.arg("--times-json").arg(path);
    }
    let out = cmd.output()?;
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

/// A `--times-json` file of `cargo xtask test`.
fn read_times(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Boot-to-results of `cell` (`KERNEL/ARCH/CONFIG`) in seconds, from a
/// `--times-json` file's figures.
fn boot_to_results(times: &Value, cell: &str) -> Option<f64> {
    times.as_array()?.iter().find(|c| c["cell"] == cell)?["boot_to_results_s"].as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_probe_times_from_results() {
        let r = "KTAP version 1\n1..2\n# ksh: /proc/kallsyms read once (12 bytes) in 5 ms\n\
                 \x20   KTAP version 1\n    # Subtest: sizes\n    1..1\n    # 3 lookups in 9 ms\n    ok 1 a\n\
                 # sizes: 412 ms\nok 1 sizes\n\
                 \x20   KTAP version 1\n    # Subtest: boot\n    1..1\n    ok 1 b\n\
                 # boot: 179 ms\nok 2 boot\n# ksh: probes took 7490 ms inside the guest\n";
        let report = ktap::parse(r, ksh_proto::COMPLETION_RECORD);
        assert_eq!(
            probe_times(&report),
            vec![("sizes".to_string(), 412.0), ("boot".to_string(), 179.0)]
        );
    }

    #[test]
    fn reads_the_sized_figure_of_lookup_bench() {
        let r = "KTAP version 1\n1..1\n\
                 \x20   KTAP version 1\n    # Subtest: lookup-bench\n    1..1\n\
                 \x20   # sized_lookup_ns=3362.5 min=3300.0 max=3400.0 n=52441 rounds=9\n\
                 \x20   # lookup_ns=3705 format_ns=5447 n=10000 rounds=9\n    ok 1 measured\n\
                 # lookup-bench: 251 ms\nok 1 lookup-bench\n";
        let report = ktap::parse(r, ksh_proto::COMPLETION_RECORD);
        assert_eq!(sized_figure(&report), Some(3362.5));
        let times = testrun::CellTimes {
            measured: vec![(
                "lookup-bench/measured".into(),
                "lookup_ns=3705 format_ns=5447 n=10000 rounds=9".into(),
            )],
            ..Default::default()
        };
        assert_eq!(lookup_figures_of(&times), Some((3705.0, 5447.0)));
    }

    #[test]
    fn reads_boot_to_results_from_the_times_json() {
        let times = json!([
            { "cell": "7.3/x86_64/minimal", "boot_to_results_s": 2.5 },
            { "cell": "7.3/arm64/minimal", "boot_to_results_s": 1.7 },
            { "cell": "7.3/arm64/kaslr", "boot_to_results_s": null },
        ]);
        assert_eq!(boot_to_results(&times, "7.3/x86_64/minimal"), Some(2.5));
        assert_eq!(boot_to_results(&times, "7.3/arm64/minimal"), Some(1.7));
        assert_eq!(boot_to_results(&times, "7.3/arm64/kaslr"), None);
        assert_eq!(boot_to_results(&times, "arm64/up"), None);
    }
}
