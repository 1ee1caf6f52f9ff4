//! Every flag of every subcommand, declared in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use harness::cell::toolchain::Toolchain;
use harness::vm::accel::AccelChoice;

/// Test harness for kallsyms symbol sizes: builds patched Linux kernels,
/// boots them in QEMU (x86_64, arm64) and checks kallsyms lookups and sizes
/// from inside the guest.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Build, boot and probe kernels; report every check as a test case.
    ///
    /// Test names are KERNEL/ARCH/CONFIG/PROBE/CASE. Arguments after `--` work as
    /// with `cargo test` (a name filter, --exact, --skip, --list,
    /// --format json); kernels whose tests are all filtered out are not
    /// built. Example: `cargo xtask test -- arm64/` builds and boots arm64 only.
    Test(TestArgs),
    /// Boot a cell's kernel (built if needed) with a shell on this
    /// terminal: the probe module loaded, the expectations in /ksh/expect,
    /// `ksh-probe NAME` reruns one probe, `ksh-lookup ADDR|NAME` compares
    /// the kernel's answer with the host's. `exit`/`poweroff` ends it,
    /// Ctrl-a x quits QEMU. Every failing case names the command for its kernel.
    /// One --arch (here the default is x86_64) and one --config.
    Run(RunArgs),
    /// Build a kernel only; prints the build dir as the last line of stdout.
    Build(BuildArgs),
    /// Check the patch series: checkpatch per patch, a build of every prefix
    /// per arch, and no drift between the generator crate and its patch.
    CheckSeries(CheckSeriesArgs),
    /// Regenerate patches/<version> (6.12, or --kernel 7.3) with git, with kallsyms-gen/src/*.rs in the generator patch.
    SyncSeries(SyncSeriesArgs),
    /// Print the CI matrix (arch × config × kernel) as JSON.
    Matrix(MatrixArgs),
    /// Print a JUnit file of `test --junit` as markdown (a CI job summary):
    /// per cell a table of passed, failed and skipped cases, and each failed
    /// case with the first line of its message.
    Summary(SummaryArgs),
    /// For every case, the kernels that make it fail (the baseline, the
    /// mutants that name it, the faults) or the registry's reason why none
    /// does; fails when a case has neither. `--write` updates
    /// docs/sensitivity.md, `--check` requires it to be current.
    Sensitivity(SensitivityArgs),
    /// Find the first commit of a kernel tree where the selected probes fail
    /// (drives `git bisect run`; the tree is restored when it ends).
    Bisect(BisectArgs),
    /// End-to-end test of `bisect`: a throwaway history of a kernel line's
    /// Debian source with one breaking commit, bisected on x86_64/minimal;
    /// fails unless exactly that commit is named, the bisect took the
    /// line from the tree's Makefile and the tree is restored.
    BisectSelftest(BisectSelftestArgs),
    /// Measure the project's figures side by side (generator speed, kernel
    /// memory, lookup cost in the guest, cycle times); reports, never fails
    /// on a slow machine.
    Bench(BenchArgs),
    /// Prove the probes' sensitivity: build and test each known-bad kernel
    /// of patches/<kernel>/mutants/ (default: mainline, x86_64/minimal); fails if any
    /// mutant is missed (no case fails) or does not build.
    Mutants(MutantsArgs),
    /// The fault suite: inject faults (frozen or killed QEMU, killed
    /// harness, also mid-make, truncated vmlinux/initramfs, concurrent runs of one cell,
    /// a probe module that panics or hangs, a full run dir, a copied checkout, an interrupted
    /// unpack, an empty filter, a bad --junit path) into real runs of an
    /// already-built cell; each must produce its outcome within its bound
    /// and the next run must pass unaided. Prints a table; exits 1 on a miss.
    Faults(FaultsArgs),
    /// Judge a saved run again: RUN_DIR is a run dir of `test` (e.g.
    /// target/ksh/runs/SOURCE/ARCH-CONFIG/latest); prints its cases as
    /// `test` did and exits as `test` would (101 when a case fails).
    Judge(JudgeArgs),
    /// One bisect step (what `git bisect run` calls): exit 0 good, 1 bad,
    /// 125 skip (does not build or boot), 128 harness fault (aborts).
    #[command(hide = true)]
    BisectStep(BisectStepArgs),
}

/// What kernel(s) to build: shared by `test` and `build`.
#[derive(Args, Debug, Clone)]
pub struct KernelSelection {
    /// Architecture(s): x86_64, arm64. Repeat or comma-separate; default: all.
    #[arg(long = "arch", value_delimiter = ',')]
    pub arches: Vec<String>,
    /// Config variant(s) from kernel-configs/variants/ (default: minimal).
    #[arg(long = "config", value_delimiter = ',', default_value = "minimal")]
    pub configs: Vec<String>,
    /// Toolchain(s): gcc (with the arch's cross binutils), llvm (LLVM=1:
    /// clang, ld.lld, llvm-nm). Repeat or comma-separate; default: gcc.
    /// An LLVM cell's config is named CONFIG-llvm (`x86_64/minimal-llvm/...`).
    #[arg(long = "toolchain", value_delimiter = ',')]
    pub toolchains: Vec<Toolchain>,
    /// Build without the kallsyms patches (test-only fixtures still apply),
    /// to compare and to prove the probes can fail.
    #[arg(long)]
    pub baseline: bool,
    /// Use this kernel tree instead of Debian's source (never modified:
    /// the build goes to a separate O= dir in the cache); its Makefile's
    /// version picks the kernel line.
    #[arg(long, value_name = "PATH")]
    pub kernel_tree: Option<PathBuf>,
    /// Kernel line(s) of Debian's source: 7.3 (mainline, the default:
    /// linux-source-7.3 from trixie-backports, fetched into the cache, with
    /// patches/7.3, the series that is posted), 6.12 (Debian's own
    /// linux-source-6.12 with patches/6.12, the stable backport), or all.
    /// Repeat or comma-separate. With --kernel-tree, the tree's Makefile
    /// decides.
    #[arg(long = "kernel", value_name = "VERSION", value_delimiter = ',')]
    pub kernel_versions: Vec<String>,
    /// Parallel make jobs (default: CPUs + 1).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub kernel: KernelSelection,
    /// Accelerator: auto (KVM where it has been seen to boot a Linux guest
    /// on this host, else TCG), kvm, or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Run the baseline kernel and require the cases each probe lists as
    /// baseline failures to fail there (everything else must pass). Proves
    /// the probes can detect size-blind lookups. Implies --baseline.
    #[arg(long)]
    pub expect_baseline_failures: bool,
    /// Also write JUnit XML here (one test suite per arch/config). Checked
    /// before any work; written whatever happens to the cells.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write each cell's figures here as JSON (build, VM and
    /// boot-to-results times, the probes' time in the guest), written
    /// when the run ends; `cargo xtask bench` reads its warm reruns' here.
    #[arg(long, value_name = "FILE")]
    pub times_json: Option<PathBuf>,
    /// Accept a filter that selects no test (by default an error).
    #[arg(long)]
    pub allow_no_tests: bool,
    /// The VM's silence limit in seconds: no console or results output for
    /// this long stops QEMU and fails the cell (default 45).
    #[arg(long, value_name = "SECS")]
    pub vm_silence: Option<u64>,
    /// Extra kernel command-line word for the guest (repeatable), e.g.
    /// `ksh_probe.fault=hang` (the fault suite's injected module faults;
    /// `/init` passes `ksh_probe.*` words to the probe module).
    #[arg(long, value_name = "WORD")]
    pub guest_param: Vec<String>,
    /// Copy the guest console to stderr as it arrives (it is saved in the
    /// run dir either way).
    #[arg(long)]
    pub console: bool,
    #[command(flatten)]
    pub gdb: GdbArgs,
    /// libtest arguments: filter, --exact, --skip, --list, --format json, ...
    #[arg(last = true)]
    pub libtest: Vec<String>,
}

/// QEMU's gdbstub, for `test` and `run`.
#[derive(Args, Debug, Clone)]
pub struct GdbArgs {
    /// Start QEMU's gdbstub and halt the guest until gdb continues it;
    /// prints the gdb command line. Turns off KASLR and the VM's time
    /// limits, and streams the console. One cell at a time makes sense.
    #[arg(long)]
    pub gdb: bool,
    /// The gdbstub's TCP port on 127.0.0.1 (with --gdb).
    #[arg(long, default_value_t = 1234, value_name = "PORT")]
    pub gdb_port: u16,
}

impl GdbArgs {
    /// The port, when --gdb is given.
    pub fn port(&self) -> Option<u16> {
        self.gdb.then_some(self.gdb_port)
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// One --arch (default here: x86_64) and one --config.
    #[command(flatten)]
    pub kernel: KernelSelection,
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    #[command(flatten)]
    pub gdb: GdbArgs,
    /// Extra kernel command-line word (repeatable).
    #[arg(long, value_name = "WORD")]
    pub guest_param: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub kernel: KernelSelection,
}

#[derive(Args, Debug)]
pub struct SyncSeriesArgs {
    /// The kernel line(s) whose series to rewrite (`patches/<version>/`,
    /// from the files of that line's Debian source): 6.12, 7.3 or all
    /// (default: all, so both series carry the crate's sources).
    #[arg(long = "kernel", value_name = "VERSION", value_delimiter = ',')]
    pub kernel: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CheckSeriesArgs {
    #[command(flatten)]
    pub kernel: KernelSelection,
    /// Only the checks that build nothing (generator drift, regeneration,
    /// cover letter, checkpatch): about a minute, for CI; the prefix
    /// builds take about a minute per patch and arch with a warm cache.
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub kernel: KernelSelection,
    /// Every config variant in kernel-configs/variants/ (default: --config).
    #[arg(long)]
    pub all_configs: bool,
    /// Indent the JSON for humans.
    #[arg(long)]
    pub pretty: bool,
}

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// The JUnit XML file `cargo xtask test --junit` wrote.
    #[arg(long, value_name = "FILE")]
    pub junit: PathBuf,
}

#[derive(Args, Debug)]
pub struct SensitivityArgs {
    /// Write the map to docs/sensitivity.md.
    #[arg(long)]
    pub write: bool,
    /// Require docs/sensitivity.md to be what the registry, the mutants and
    /// the faults say now.
    #[arg(long, conflicts_with = "write")]
    pub check: bool,
}

#[derive(Args, Debug)]
pub struct BisectArgs {
    /// The git checkout to bisect (must be clean).
    #[arg(long, value_name = "PATH")]
    pub kernel_tree: PathBuf,
    /// A revision where the selected probes pass.
    #[arg(long, value_name = "REV")]
    pub good: String,
    /// A revision where they fail.
    #[arg(long, value_name = "REV")]
    pub bad: String,
    #[arg(long, default_value = "x86_64")]
    pub arch: String,
    #[arg(long, default_value = "minimal")]
    pub config: String,
    /// Test-name filter selecting the probes that decide good/bad (as with
    /// `cargo xtask test -- FILTER`); default: every case.
    #[arg(last = true)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BisectStepArgs {
    #[arg(long)]
    pub kernel_tree: PathBuf,
    #[arg(long)]
    pub arch: String,
    #[arg(long)]
    pub config: String,
    /// JSON-lines file the step appends its record to.
    #[arg(long)]
    pub record: PathBuf,
    #[arg(last = true)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BisectSelftestArgs {
    /// The kernel line whose Debian source (and series) the history is
    /// made of (default: mainline, where regressions are bisected).
    #[arg(long = "kernel", value_name = "VERSION")]
    pub kernel: Option<String>,
    /// Test-name filter passed to the bisect (default: every case).
    #[arg(last = true)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct MutantsArgs {
    /// --arch defaults to x86_64 here.
    #[command(flatten)]
    pub kernel: KernelSelection,
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Only these mutants (file names without .patch; repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub kernel: KernelSelection,
    /// Runs per figure (medians are reported with min and max).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Also write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Only these sections (comma-separated; default all). `rerun` also
    /// runs `boot`, whose null boots it is judged against.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<BenchSection>,
}

/// The sections of `cargo xtask bench`, in the order they run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchSection {
    /// 1. Rust generator vs C `scripts/kallsyms`.
    Generator,
    /// 2. The kallsyms tables' bytes, patched vs baseline.
    Memory,
    /// 3. Lookup cost in the guest (wall clock, and an instruction clock: QEMU's -icount).
    Lookups,
    /// 4. Null boot vs boot-to-results.
    Boot,
    /// 4a/4b. Warm rerun of `cargo xtask test`.
    Rerun,
    /// 4c. Edit-to-result.
    Edit,
}

#[derive(Args, Debug)]
pub struct FaultsArgs {
    /// The arch of the cell under test (its kernel must be built).
    #[arg(long, default_value = "x86_64")]
    pub arch: String,
    #[arg(long, default_value = "minimal")]
    pub config: String,
    /// The kernel line of the cell (default: mainline).
    #[arg(long = "kernel", value_name = "VERSION")]
    pub kernel: Vec<String>,
    /// The VM silence limit of the frozen-QEMU run (seconds); it must fail
    /// within it plus 5 s. Other runs keep the default limit.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub vm_silence: u64,
    /// Only these faults (comma-separated names from the table).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct JudgeArgs {
    /// The run dir (its `judge-input.json`, `console.log`, `results.ktap`).
    pub run_dir: PathBuf,
    /// libtest arguments: filter, --exact, --skip, --format json, ...
    #[arg(last = true)]
    pub libtest: Vec<String>,
}
