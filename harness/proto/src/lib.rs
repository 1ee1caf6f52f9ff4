//! What the host harness and the guest `/init` must agree on: the probe
//! registry, where expectations live in the initramfs, and the framing of the
//! KTAP result stream.
//!
//! Both sides compile this file, so a probe added here is known to the host
//! (test names, filters, timeouts) and to the guest (what to run) at once.

/// Name of the virtio-serial port that carries KTAP results. The kernel
/// console is a different channel: kernel messages never mix with results.
pub const RESULTS_PORT_NAME: &str = "ksh.results";

pub mod check;
pub mod files;
pub mod lookup;
pub mod sizes;

/// Prefix of the completion record, the mandatory last line of the result
/// stream. A stream without it means the guest crashed or hung.
pub const COMPLETION_RECORD: &str = "# ksh-complete:";

/// Directory in the initramfs that holds the host-computed expectations.
pub const EXPECT_DIR: &str = "/ksh/expect";

// The expectation files (path, record type, what a kernel guarantees
// about them) are registered in `files::EXPECT_FILES`; a file's path is
// `files::FileId::path`.

/// The file of symbol sizes for tools (patch 0011): the lines of
/// `/proc/kallsyms` with the size after the address, `ADDR SIZE TYPE NAME`.
pub const PROC_KALLSYMS_SIZES: &str = "/proc/kallsyms_sizes";

/// The probe kernel module (`harness/probe-module`), loaded by `/init`
/// before any probe runs.
pub const MODULE_PATH: &str = "/ksh/ksh_probe.ko";

/// Written by `/init` after loading [`MODULE_PATH`]: `ok`, or the error.
/// Probes that need the module quote it when its debugfs files are missing.
pub const MODULE_LOAD_STATUS: &str = "/ksh/module-load-status";

/// The module's debugfs directory (`lookup`, `bench`, `kprobe`, `features`).
pub const MODULE_DEBUGFS: &str = "/sys/kernel/debug/ksh_probe";

/// Module name as `/proc/kallsyms` and `%pS` show it (`[ksh_probe]`).
pub const MODULE_NAME: &str = "ksh_probe";

/// Name prefix of the test-only `__weak` functions of the fixture patch.
pub const FIXTURE_PREFIX: &str = "kallsyms_fixture_";

/// Functions of the probe module's `.kprobes.text` (separated by an
/// alignment gap): both must be in the kprobes blacklist after it loads.
pub const MODULE_KPROBES_FUNCS: &[&str] = &["ksh_probe_kp_small", "ksh_probe_kp_aligned"];

/// The backtrace fixture's function whose last instruction is a call (to a
/// noreturn function): its saved return address is exactly its end.
pub const MODULE_BT_CALLER: &str = "ksh_bt_caller";

/// The aligned function after it (padding before it): the backtrace
/// fixture leaves a pointer to it on the stack, which x86's `dump_stack()`
/// prints as an unreliable entry that must name it.
pub const MODULE_BT_AFTER: &str = "ksh_bt_after";

/// One probe: a program run inside the guest, in its own process, that
/// reports one KTAP subtest whose cases are listed here.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    /// Third component of test names: `ARCH/CONFIG/PROBE/CASE`.
    pub name: &'static str,
    /// What the probe checks, for `--help` and the README.
    pub about: &'static str,
    /// Wall-clock limit inside the guest (TCG) for a kernel of up to
    /// [`TIMEOUT_BASE_SYMBOLS`] symbols, scaled with the symbol count above
    /// that ([`ProbeSpec::timeout`]); past it the probe is killed and its
    /// cases are reported as TIMEOUT.
    pub timeout_secs: u32,
    /// The cases it reports, in order.
    pub cases: &'static [&'static str],
    /// Cases that must FAIL on a `--baseline` (unpatched) kernel: they detect
    /// the size-blind lookups. `--expect-baseline-failures` turns their
    /// failure there into a pass, so a probe that stops checking anything
    /// turns CI red.
    pub baseline_failures: &'static [&'static str],
    /// Run with no other probe alongside when the bench times it
    /// (`BENCH_ROUNDS_PARAM` on the command line): `/init` runs probes on
    /// every guest CPU at once, which would disturb a timing probe. A plain
    /// test run only checks that its path works, and starts it last with
    /// the others, so no CPU idles while it runs.
    pub runs_alone: bool,
}

/// Every probe, in the order the guest starts them (and reports them). The
/// guest runs as many at once as it has CPUs, so long probes come early:
/// longest first by their time in an x86_64 minimal run (ftrace 1.7 s,
/// sizes 1.3 s, proc-kallsyms 1.2 s, weak-kept 0.7 s, ...), which keeps
/// both lanes busy to the end (in registry order the longest, ftrace,
/// started late and ran on after every other probe).
/// To add a probe: add an entry here and a module under
/// `harness/guest/src/probes/`.
pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        name: "boot",
        about: "the kernel booted and /init ran with its filesystems mounted",
        timeout_secs: 5,
        cases: &["init-ran", "filesystems-mounted"],
        baseline_failures: &[],
        runs_alone: false,
    },
    ProbeSpec {
        name: "ftrace",
        about: "available_filter_functions has no invalid entries; filtering on every function and on a module's works",
        timeout_secs: 30,
        cases: &["no-invalid-entries", "filter-all", "filter-module"],
        baseline_failures: &[],
        runs_alone: false,
    },
    ProbeSpec {
        name: "sizes",
        about: "looking up a sized symbol's start gives its name, offset 0 and its ELF size; its last byte gives the symbol",
        timeout_secs: 60,
        cases: &["start-name-offset", "start-size", "last-byte"],
        baseline_failures: &["start-size"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "proc-kallsyms",
        about: "/proc/kallsyms parses and matches the symbols derived from vmlinux",
        timeout_secs: 30,
        cases: &["format", "names-and-types", "addresses"],
        baseline_failures: &[],
        runs_alone: false,
    },
    ProbeSpec {
        name: "kallsyms-sizes-file",
        about: "/proc/kallsyms_sizes lists the lines of /proc/kallsyms with each symbol's size (vmlinux and module symbols with their ELF sizes); an unprivileged reader gets the sizes and no addresses",
        timeout_secs: 30,
        cases: &["lines", "vmlinux-sizes", "module-sizes", "unprivileged"],
        // The unpatched kernel has no such file: every item is missing.
        baseline_failures: &["lines", "vmlinux-sizes", "module-sizes", "unprivileged"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "vmcoreinfo",
        about: "VMCOREINFO, as /proc/kcore's notes give it to drgn, names the size tables at their addresses and the size format the kernel decodes",
        timeout_secs: 10,
        cases: &["size-tables"],
        // The unpatched kernel exports no size tables.
        baseline_failures: &["size-tables"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "weak-kept",
        about: "weak functions that were not overridden are listed and looked up with their real size",
        timeout_secs: 30,
        cases: &["by-name", "by-address", "size"],
        // The weak syscall stubs of kernel/sys_ni.c are followed by orphans
        // (x86_64: 19, arm64: 17 sizes wrong on the tiny baseline kernels).
        baseline_failures: &["size"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "unsized-symbols",
        about: "symbols without a size (assembly without .size) still extend up to the next symbol",
        timeout_secs: 30,
        cases: &["up-to-next"],
        baseline_failures: &[],
        runs_alone: false,
    },
    ProbeSpec {
        name: "weak-orphans",
        about: "no address inside an overridden weak function's leftover body resolves to a symbol",
        timeout_secs: 30,
        // `preceding-start` passes on every kernel: the baseline proof's
        // witness that the probe ran and looked things up.
        cases: &["fixture", "all", "preceding-start"],
        baseline_failures: &["fixture", "all"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "kprobes",
        about: "the kprobes blacklist covers every function of the blacklisted areas with its extent (vmlinux and module), kprobes there and past a function's end are refused, one inside a function is accepted",
        timeout_secs: 30,
        cases: &[
            "past-end-refused",
            "inside-accepted",
            "blacklist-populated",
            "blacklist-module",
            "blacklisted-refused",
        ],
        // Size-blind lookups make every blacklist entry reach up to the next
        // symbol, past the function's end.
        baseline_failures: &["past-end-refused", "blacklist-populated", "blacklist-module"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "backtrace",
        about: "a return address at a function's end (a call to a noreturn function) is printed as that function by %pB, stack_trace_print() and dump_stack()",
        timeout_secs: 30,
        cases: &["end-of-function-frame", "stack-trace-print", "dump-stack"],
        baseline_failures: &[],
        runs_alone: false,
    },
    ProbeSpec {
        name: "format-pS",
        about: "%pS prints name+0xOFF/0xSIZE with the ELF size for a sample of text symbols",
        timeout_secs: 30,
        cases: &["shape", "real-size"],
        baseline_failures: &["real-size"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "module-symbols",
        about: "the probe module's functions are looked up with their ELF sizes",
        timeout_secs: 30,
        cases: &["found", "sizes"],
        baseline_failures: &["sizes"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "nested-symbols",
        about: "addresses of a sized symbol outside the sized symbols nested in it resolve to the enclosing symbol",
        timeout_secs: 30,
        // `inner-start` passes on every kernel (the baseline proof's witness).
        cases: &["enclosing", "inner-start"],
        // Size-blind lookups give the inner symbol for its enclosing
        // function's tail.
        baseline_failures: &["enclosing"],
        runs_alone: false,
    },
    ProbeSpec {
        name: "kallsyms-selftest",
        about: "the kernel's own CONFIG_KALLSYMS_SELFTEST finishes without a failure (config `kprobes`)",
        // It runs in a kthread after boot and walks every symbol several
        // times: tens of seconds under TCG.
        timeout_secs: 240,
        cases: &["verdict"],
        baseline_failures: &[],
        runs_alone: false,
    },
    ProbeSpec {
        name: "lookup-bench",
        about: "times the kernel's own lookups and %pS of random text addresses (figures for `cargo xtask bench`)",
        timeout_secs: 20,
        cases: &["measured"],
        baseline_failures: &[],
        runs_alone: true,
    },
];

/// Prefix of the count line every checking case writes right before its
/// result line: `# ksh-checked: PROBE/CASE N of M mismatched` (M items
/// checked, N of them wrong). The host requires it: a case that checked
/// nothing (M = 0) or reports no count is not a pass, and a case that must
/// fail on the baseline kernel counts as "failed as expected" only with
/// N > 0 (the probe ran to the end and found size-blind answers).
/// Write it with [`checked_line`]; read it with [`parse_checked_line`].
pub const CHECKED_PREFIX: &str = "# ksh-checked:";

/// The count of one case: `mismatched` of `checked` items were wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked<'a> {
    pub probe: &'a str,
    pub case: &'a str,
    pub mismatched: u64,
    pub checked: u64,
}

/// Formats the count line of a case (see [`CHECKED_PREFIX`]).
pub fn checked_line(probe: &str, case: &str, mismatched: u64, checked: u64) -> String {
    format!("{CHECKED_PREFIX} {probe}/{case} {mismatched} of {checked} mismatched")
}

/// Parses a count line, with or without KTAP indentation.
pub fn parse_checked_line(line: &str) -> Option<Checked<'_>> {
    let rest = line.trim_start().strip_prefix(CHECKED_PREFIX)?;
    let mut f = rest.split_whitespace();
    let (path, n, of, m, word) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    if of != "of" || word != "mismatched" || f.next().is_some() {
        return None;
    }
    let (probe, case) = path.split_once('/')?;
    Some(Checked {
        probe,
        case,
        mismatched: n.parse().ok()?,
        checked: m.parse().ok()?,
    })
}

/// Cases that report no count line: they check no list of items (a
/// timing figure). Every other case must report one. The host reports
/// them as measured, not as checks, and only when their figure line (with
/// every key of [`MEASUREMENT_KEYS`]) is there.
pub const UNCOUNTED_CASES: &[(&str, &str)] = &[("lookup-bench", "measured")];

/// The keys of the note an uncounted case writes before its result
/// (`# lookup_ns=N format_ns=M n=.. rounds=..`), each followed by a number.
pub const MEASUREMENT_KEYS: &[&str] = &["lookup_ns=", "format_ns="];

/// The cases of the host's `build` step (judged from the build, not from
/// the guest's stream; `harness::testrun::BUILD_CASES`): the registry
/// tables may name them too.
pub const BUILD_STEP_CASES: &[&str] = &["kernel", "generators-agree", "link-stable"];

/// Probes whose every case is a baseline failure, with the reason they
/// need no witness that passes on the baseline: on a kernel without the
/// feature every case still runs to the end and counts its items as
/// missing ("N of N"), which shows the probe read its input.
pub const NO_BASELINE_WITNESS: &[(&str, &str)] = &[
    (
        "kallsyms-sizes-file",
        "the unpatched kernel has no /proc/kallsyms_sizes: each case counts every line or symbol as missing",
    ),
    (
        "vmcoreinfo",
        "the unpatched kernel exports no size tables: the case counts each entry as missing, and fails unless it found SYMBOL(kallsyms_names), its witness that the note was read",
    ),
];

/// A case that must fail on the baseline kernel of some kernel lines
/// only, beside its probe's `baseline_failures` (which fail on every
/// line): the unpatched lookups go wrong for it only where that line lays
/// out its text so that they do. On the other lines it stays a witness
/// that must pass, so the proof asks no more and no less of it than the
/// kernel gives.
#[derive(Debug, Clone, Copy)]
pub struct KernelBaselineFailure {
    pub probe: &'static str,
    pub case: &'static str,
    /// The kernel lines (`7.3`, as `--kernel` names them) whose baseline
    /// fails it, on every arch.
    pub kernels: &'static [&'static str],
    /// What the size-blind kernel gets wrong there, and why only there.
    pub why: &'static str,
}

/// Every [`KernelBaselineFailure`]; `--expect-baseline-failures` on a
/// listed line requires each to fail with counted mismatches, exactly as
/// a probe's own `baseline_failures`.
pub const KERNEL_BASELINE_FAILURES: &[KernelBaselineFailure] = &[KernelBaselineFailure {
    probe: "ftrace",
    case: "filter-all",
    kernels: &["7.3"],
    why: "7.x's linker script marks the text sections it splits out (`__split_text_start`/`_end`, \
          `__unlikely_text_start`; on arm64 also `__entry_text_end`): zero-size symbols at the \
          first function of .text.unlikely, which in both minimal kernels is the weak `abort()` \
          of kernel/exit.c. kallsyms sorts weak symbols after the others of one address and the \
          size-blind lookup takes the first, so ftrace names abort's call site \
          `__split_text_end` (x86_64) or `__entry_text_end` (arm64) and `*` never selects \
          abort; the size-aware lookup takes the sized symbol. 6.12 has no such markers",
}];

/// Whether `probe/case` must fail on the baseline kernel of line
/// `kernel` (`6.12`, `7.3`): a probe's own `baseline_failures`, or a
/// [`KERNEL_BASELINE_FAILURES`] entry of that line.
pub fn is_baseline_failure(probe: &str, case: &str, kernel: &str) -> bool {
    let listed = self::probe(probe).is_some_and(|p| p.baseline_failures.contains(&case));
    listed
        || KERNEL_BASELINE_FAILURES
            .iter()
            .any(|f| f.probe == probe && f.case == case && f.kernels.contains(&kernel))
}

/// Whether `probe/case` must report a [`checked_line`].
pub fn is_counted(probe: &str, case: &str) -> bool {
    !UNCOUNTED_CASES.contains(&(probe, case))
}

/// A condition on the build, as data: both the guest (deciding to skip)
/// and the host (deciding whether a SKIP is allowed) evaluate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The guest's arch (`x86_64`, `arm64`) is this one.
    Arch(&'static str),
    /// `key=value` in the build info ([`files::BuildInfo`]).
    BuildInfo(&'static str, &'static str),
}

impl Condition {
    /// Evaluates against the arch and a build-info lookup.
    pub fn holds(&self, arch: &str, info: &dyn Fn(&str) -> Option<String>) -> bool {
        match *self {
            Condition::Arch(a) => arch == a,
            Condition::BuildInfo(k, v) => info(k).as_deref() == Some(v),
        }
    }
}

/// Cases that do not apply to some builds: the case is **not applicable**
/// unless all of `requires` hold. Only then may it report SKIP; a SKIP
/// anywhere else fails on the host. And only in the cells `declared_in`
/// names: a kernel elsewhere that lacks what `requires` asks for lost a
/// feature its config should have (an option no fragment pins, a patch
/// that stopped declaring one), and its SKIP fails on the host too.
#[derive(Debug, Clone, Copy)]
pub struct Applicability {
    pub probe: &'static str,
    /// The cases this applies to; empty means every case of the probe.
    pub cases: &'static [&'static str],
    /// All must hold for the case to apply.
    pub requires: &'static [Condition],
    /// Why it does not apply otherwise (the SKIP reason).
    pub why_not: &'static str,
    /// The cells whose kernels lack it by design: the only ones where the
    /// SKIP is accepted (see [`skip_declared`]). Empty: every harness
    /// kernel has it, and a SKIP always fails.
    pub declared_in: &'static [Scope],
}

/// Cells in which a case may be declared not applicable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A config variant (`kernel-configs/variants/NAME.config`), with any
    /// toolchain.
    Config(&'static str),
    /// The baseline kernel (`--baseline`: the fixtures, no series).
    Baseline,
    /// A user's `--kernel-tree` (bisect steps among them), which may
    /// predate the series.
    UserTree,
}

/// The cell a SKIP came from, for [`skip_declared`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellKind<'a> {
    /// The config variant, without the toolchain suffix (`minimal`).
    pub variant: &'a str,
    pub baseline: bool,
    pub user_tree: bool,
}

impl Scope {
    /// Whether `cell` is in this scope.
    pub fn contains(&self, cell: &CellKind) -> bool {
        match *self {
            Scope::Config(v) => cell.variant == v,
            Scope::Baseline => cell.baseline,
            Scope::UserTree => cell.user_tree,
        }
    }
}

/// The config variants without `CONFIG_KALLSYMS_SELFTEST` (every one but
/// `kprobes`).
const NO_SELFTEST: &[Scope] = &[
    Scope::Config("minimal"),
    Scope::Config("up"),
    Scope::Config("kaslr"),
    Scope::Config("defconfig"),
    Scope::Config("defconfig-extra-pass"),
];

/// Every case that may be not applicable, and when. Cases not listed here
/// apply to every build: they never skip.
pub const APPLICABILITY: &[Applicability] = &[
    Applicability {
        // A host-side case (harness/src/kernel/generator_check.rs): the link
        // compares the generators only where the Rust one is selected.
        probe: "build",
        cases: &["generators-agree"],
        requires: &[Condition::BuildInfo("kallsyms_rust_generator_check", "1")],
        why_not: "CONFIG_KALLSYMS_RUST_GENERATOR_CHECK is not set: the kernel has no Rust generator to compare (the baseline has no series)",
        // The patched source declares the option and every fragment set
        // asks for it (kernel-configs/series.config).
        declared_in: &[Scope::Baseline, Scope::UserTree],
    },
    Applicability {
        probe: "kallsyms-selftest",
        cases: &[],
        requires: &[Condition::BuildInfo("kallsyms_selftest", "1")],
        why_not: "CONFIG_KALLSYMS_SELFTEST is not set (config variant kprobes has it)",
        declared_in: NO_SELFTEST,
    },
    Applicability {
        probe: "kprobes",
        cases: &[],
        requires: &[Condition::BuildInfo("kprobes", "1")],
        why_not: "CONFIG_KPROBES is not set in this kernel (the check needs CONFIG_KPROBES=y)",
        // common.config asks for it in every cell.
        declared_in: &[],
    },
    Applicability {
        probe: "ftrace",
        cases: &[],
        requires: &[
            Condition::BuildInfo("function_tracer", "1"),
            Condition::BuildInfo("dynamic_ftrace", "1"),
        ],
        why_not: "needs CONFIG_FUNCTION_TRACER and CONFIG_DYNAMIC_FTRACE",
        // common.config asks for the tracer; DYNAMIC_FTRACE is its default.
        declared_in: &[],
    },
];

/// Why `probe/case` does not apply to this build, or None when it applies
/// (and so must not skip).
pub fn not_applicable(
    probe: &str,
    case: &str,
    arch: &str,
    info: &dyn Fn(&str) -> Option<String>,
) -> Option<&'static str> {
    APPLICABILITY
        .iter()
        .filter(|a| a.probe == probe && (a.cases.is_empty() || a.cases.contains(&case)))
        .find(|a| !a.requires.iter().all(|c| c.holds(arch, info)))
        .map(|a| a.why_not)
}

/// Whether a SKIP of `probe/case` is declared for `cell`: some entry of
/// [`APPLICABILITY`] for the case lists the cell in `declared_in`. The
/// host accepts a SKIP only where [`not_applicable`] gives a reason and
/// this holds.
pub fn skip_declared(probe: &str, case: &str, cell: &CellKind) -> bool {
    APPLICABILITY
        .iter()
        .filter(|a| a.probe == probe && (a.cases.is_empty() || a.cases.contains(&case)))
        .any(|a| a.declared_in.iter().any(|s| s.contains(cell)))
}

/// Key in the build info ([`files::BuildInfo`]): the link-time (ELF) address of
/// [`ANCHOR_SYMBOL`] in vmlinux, hex without `0x`.
pub const ANCHOR_LINK_KEY: &str = "anchor_link";

/// An exported function whose runtime address the probe module prints as
/// the module loader resolved it (through the export table, not kallsyms):
/// runtime minus link-time address is the KASLR offset, obtained without
/// `/proc/kallsyms`.
pub const ANCHOR_SYMBOL: &str = "_printk";

/// The line of the module's debugfs `features` file that carries it:
/// `anchor_printk=<hex address of _printk as the module sees it>`.
pub const ANCHOR_FEATURE_KEY: &str = "anchor_printk";

/// How many random text addresses the `lookup-bench` probe looks up.
pub const LOOKUP_BENCH_COUNT: u64 = 10_000;

/// Kernel command-line parameter (`ksh.bench_rounds=N`) with which
/// `cargo xtask bench` asks `lookup-bench` for N rounds (their median is
/// reported); a plain test run does one, to keep boot-to-results short.
pub const BENCH_ROUNDS_PARAM: &str = "ksh.bench_rounds";

/// Kernel command-line word that makes `/init` power off as soon as the
/// results port is open, after writing an empty report and the completion
/// record: the "null boot" of `cargo xtask bench`, the bare cost of booting
/// the same kernel and initramfs, against which boot-to-results is judged.
pub const NULL_BOOT_PARAM: &str = "ksh.null_boot";

/// Kernel command-line parameter (`ksh.only=PROBE[,PROBE...]`) with which
/// `cargo xtask bench` runs only the probes it reads figures from: its
/// instruction-clock boots run several times slower than a test run, and
/// only `lookup-bench` is timed there. Every other probe is reported as
/// not run (failed), so a test run never passes with it.
pub const ONLY_PROBES_PARAM: &str = "ksh.only";

/// Kernel command-line parameter (`ksh.timeout_scale=N`) that multiplies
/// every probe's timeout by N: the bench's instruction-clock boots run
/// one vCPU at a time, several times slower than a test run.
pub const TIMEOUT_SCALE_PARAM: &str = "ksh.timeout_scale";

/// The `VALUE` of the first `PARAM=VALUE` word of a kernel command line.
pub fn cmdline_value<'a>(cmdline: &'a str, param: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(param)?.strip_prefix('='))
}

/// The `N` of a `PARAM=N` word of a kernel command line.
pub fn cmdline_number(cmdline: &str, param: &str) -> Option<u64> {
    cmdline_value(cmdline, param).and_then(|v| v.parse().ok())
}

/// Kernel command-line word for a machine without a power-off device (the
/// x86_64 `microvm`): `ksh.exit_port=0xPORT` names the I/O port of QEMU's
/// `isa-debug-exit` device, and `/init` ends the run by writing
/// [`DEBUG_EXIT_VALUE`] there: QEMU exits at once with status
/// [`debug_exit_status`]. Should that write not end QEMU, `/init` resets
/// the machine (QEMU's `-no-reboot` turns that into its exit). A power-off
/// request would only halt the CPUs (the kernel turns `RB_POWER_OFF` into
/// a halt when nothing can power off); the kernel's reset path (triple
/// fault) left QEMU wedged in about one run in 15 under TCG.
pub const EXIT_PORT_PARAM: &str = "ksh.exit_port";

/// What `/init` writes to the `isa-debug-exit` port.
pub const DEBUG_EXIT_VALUE: u8 = 0x10;

/// QEMU's exit status after the guest wrote `value` to `isa-debug-exit`.
pub const fn debug_exit_status(value: u8) -> i32 {
    ((value as i32) << 1) | 1
}

/// Kernel command-line word of `cargo xtask run`: `/init` sets up as for a
/// test run (mounts, probe module), then gives the console to an
/// interactive shell (busybox, [`SHELL_BUSYBOX`]) instead of running the
/// probes, and powers off when the shell exits.
pub const SHELL_PARAM: &str = "ksh.shell";
/// `ksh.cols=N` / `ksh.rows=N`: the host terminal's size, set on the
/// guest's console tty so the shell's line editing wraps where the user's
/// terminal does (a serial line has no size of its own).
pub const SHELL_COLS_PARAM: &str = "ksh.cols";
pub const SHELL_ROWS_PARAM: &str = "ksh.rows";
/// Where the interactive initramfs carries busybox (applet links are made
/// by `/init` at boot).
pub const SHELL_BUSYBOX: &str = "/bin/busybox";
/// The commands `cargo xtask run` puts on the guest's PATH: rerun one
/// probe by name (KTAP on stdout), and look up an address or a name in the
/// kernel (through the probe module) next to the host's ground truth.
pub const SHELL_PROBE_CMD: &str = "/bin/ksh-probe";
pub const SHELL_LOOKUP_CMD: &str = "/bin/ksh-lookup";
/// `/init` prints this on the console, followed by the probe module's
/// `.text` address (hex), once the module is loaded: for `gdb`'s
/// `add-symbol-file` (`--gdb`).
pub const MODULE_TEXT_LINE: &str = "ksh-init: ksh_probe .text at 0x";

/// `key=value` of build-info.txt: the number of kallsyms symbols of the
/// kernel, from which probe timeouts are derived.
pub const SYMBOLS_KEY: &str = "kallsyms_symbols";

/// Cases that no kernel the harness builds makes fail (no baseline
/// failure, no mutant's `must-fail:`, no fault of `cargo xtask faults`),
/// each with why it is size-agnostic and what it guards. `cargo xtask
/// sensitivity` lists them beside the cases that have a failing kernel; a
/// case that has neither fails `cargo test` (`docs/sensitivity.md`).
pub const NO_FAILING_KERNEL: &[(&str, &str)] = &[
    (
        "boot/init-ran",
        "guards the test environment, not sizes: the kernel ran the harness's /init as PID 1 (a kernel that does not panics or falls silent, and boot/vm-completed fails)",
    ),
    (
        "boot/filesystems-mounted",
        "guards the test environment, not sizes: proc, sysfs, devtmpfs, debugfs and tracefs are mounted for the probes (a config without one of them fails here first, and every probe that reads it after)",
    ),
    (
        "lookup-bench/measured",
        "measures the lookups' cost for `cargo xtask bench`; checks nothing, and says so",
    ),
];

/// Build-info keys: the sized symbols of the expected table and the
/// addresses they are at, counted by the host's table walk, not by the
/// `sizes` plan (`sizes::plan`), whose record counts must match them.
pub const SIZED_SYMBOLS_KEY: &str = "sized_symbols";
pub const SIZED_ADDRESSES_KEY: &str = "sized_addresses";

/// Build-info keys: how many weak functions of the linked objects were
/// overridden (their body left in the image), and how many of those bodies
/// the host located (and so `weak-orphans/all` checks).
pub const WEAK_OVERRIDDEN_KEY: &str = "weak_overridden";
pub const WEAK_LOCATED_KEY: &str = "weak_located";

/// `weak-orphans/all` fails when the host located fewer than this share
/// (percent) of the overridden weak functions: it would check too little
/// of what it claims. Measured: 99.6 % (x86_64 defconfig, 553 of 555) and
/// 99.7 % (arm64 defconfig, 334 of 335); the minimal kernels locate all.
pub const WEAK_LOCATED_MIN_PERCENT: u64 = 95;

/// Symbol count up to which a probe's `timeout_secs` applies as it is.
/// The probes' work is per symbol (a lookup, a line), so a larger kernel
/// gets a proportionally longer limit.
pub const TIMEOUT_BASE_SYMBOLS: u64 = 40_000;

impl ProbeSpec {
    /// The probe's limit for a kernel of `symbols` kallsyms symbols (0 when
    /// unknown: the base limit).
    pub fn timeout(&self, symbols: u64) -> std::time::Duration {
        let base = u64::from(self.timeout_secs);
        let scaled = base * symbols.max(TIMEOUT_BASE_SYMBOLS) / TIMEOUT_BASE_SYMBOLS;
        std::time::Duration::from_secs(scaled.max(base))
    }
}

/// Looks a probe up by name.
pub fn probe(name: &str) -> Option<&'static ProbeSpec> {
    PROBES.iter().find(|p| p.name == name)
}

/// Formats the completion record for `probes` probes run.
pub fn completion_record(probes: usize) -> String {
    format!("{COMPLETION_RECORD} probes={probes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_of_the_command_line() {
        let c = "console=ttyS0 ksh.bench_rounds=9 ksh.timeout_scale=10 ksh.bench_roundsx=3";
        assert_eq!(cmdline_number(c, BENCH_ROUNDS_PARAM), Some(9));
        assert_eq!(cmdline_number(c, TIMEOUT_SCALE_PARAM), Some(10));
        assert_eq!(
            cmdline_number("ksh.timeout_scale=x", TIMEOUT_SCALE_PARAM),
            None
        );
        assert_eq!(cmdline_number("", TIMEOUT_SCALE_PARAM), None);
    }

    #[test]
    fn probe_and_case_names_are_unique_and_path_safe() {
        let mut names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PROBES.len());
        for p in PROBES {
            for c in p.cases {
                assert!(!c.contains('/') && !c.contains(' '), "{c}");
            }
            assert!(!p.name.contains('/') && !p.name.contains(' '));
            for b in p.baseline_failures {
                assert!(
                    p.cases.contains(b),
                    "{}: baseline failure {b} is not a case",
                    p.name
                );
            }
        }
    }

    #[test]
    fn every_probe_with_baseline_failures_has_a_counted_witness() {
        // The strict baseline proof needs, per such probe, a case that must
        // pass on the baseline kernel after checking something.
        for p in PROBES.iter().filter(|p| !p.baseline_failures.is_empty()) {
            if NO_BASELINE_WITNESS.iter().any(|(n, _)| *n == p.name) {
                assert!(
                    p.cases.iter().all(|c| p.baseline_failures.contains(c)),
                    "{}: exempt from a witness, so every case must be a baseline failure",
                    p.name
                );
                for c in p.cases {
                    assert!(is_counted(p.name, c), "{}/{c} must report a count", p.name);
                }
                continue;
            }
            assert!(
                p.cases
                    .iter()
                    .any(|c| !p.baseline_failures.contains(c) && is_counted(p.name, c)),
                "{}: every case is a baseline failure; add one that passes on the baseline",
                p.name
            );
            for c in p.baseline_failures {
                assert!(is_counted(p.name, c), "{}/{c} must report a count", p.name);
            }
        }
    }

    #[test]
    fn registry_tables_name_real_cases() {
        for (p, c) in UNCOUNTED_CASES {
            assert!(probe(p).is_some_and(|s| s.cases.contains(c)), "{p}/{c}");
        }
        for a in APPLICABILITY {
            if a.probe == "build" {
                assert!(a.cases.iter().all(|c| BUILD_STEP_CASES.contains(c)));
            } else {
                let s = probe(a.probe).unwrap_or_else(|| panic!("{}", a.probe));
                for c in a.cases {
                    assert!(s.cases.contains(c), "{}/{c}", a.probe);
                }
            }
            assert!(!a.requires.is_empty());
        }
        for (p, why) in NO_BASELINE_WITNESS {
            assert!(probe(p).is_some() && !why.is_empty(), "{p}");
        }
    }

    #[test]
    fn kernel_baseline_failures_keep_a_witness() {
        // Each names a counted case that the probe does not already list
        // for every line, and on its lines the probe keeps a counted case
        // that must pass on the baseline (as the strict proof needs).
        for f in KERNEL_BASELINE_FAILURES {
            let p = probe(f.probe).unwrap_or_else(|| panic!("{}", f.probe));
            assert!(p.cases.contains(&f.case), "{}/{}", f.probe, f.case);
            assert!(
                !p.baseline_failures.contains(&f.case),
                "{}/{}",
                f.probe,
                f.case
            );
            assert!(is_counted(f.probe, f.case), "{}/{}", f.probe, f.case);
            assert!(!f.kernels.is_empty() && !f.why.is_empty());
            for k in f.kernels {
                assert!(is_baseline_failure(f.probe, f.case, k));
                assert!(
                    p.cases
                        .iter()
                        .any(|c| is_counted(p.name, c) && !is_baseline_failure(p.name, c, k)),
                    "{}: no witness left on {k}",
                    p.name
                );
            }
        }
        assert!(is_baseline_failure("ftrace", "filter-all", "7.3"));
        assert!(!is_baseline_failure("ftrace", "filter-all", "6.12"));
        assert!(is_baseline_failure("sizes", "start-size", "6.12"));
        assert!(!is_baseline_failure("sizes", "start-name-offset", "7.3"));
    }

    #[test]
    fn timeouts_scale_with_the_symbol_count() {
        let p = probe("sizes").unwrap();
        let base = std::time::Duration::from_secs(p.timeout_secs.into());
        assert_eq!(p.timeout(0), base);
        assert_eq!(p.timeout(30_000), base);
        assert_eq!(p.timeout(4 * TIMEOUT_BASE_SYMBOLS), base * 4);
        let info = |t| files::BuildInfo::decode(t).unwrap().symbols();
        assert_eq!(info("a=1\nkallsyms_symbols=120000\n"), 120_000);
        assert_eq!(info("a=1\n"), 0);
    }

    #[test]
    fn checked_line_round_trips() {
        let l = checked_line("sizes", "start-size", 3, 4096);
        assert_eq!(l, "# ksh-checked: sizes/start-size 3 of 4096 mismatched");
        let indented = format!("    {l}");
        let c = parse_checked_line(&indented).unwrap();
        assert_eq!(
            (c.probe, c.case, c.mismatched, c.checked),
            ("sizes", "start-size", 3, 4096)
        );
        assert!(parse_checked_line("# ksh-checked: sizes/x 1 of").is_none());
        assert!(parse_checked_line("# ksh-checked: sizes 1 of 2 mismatched").is_none());
        assert!(parse_checked_line("# other: sizes/x 1 of 2 mismatched").is_none());
    }

    #[test]
    fn applicability_is_evaluated_as_data() {
        let info = |on: bool| move |k: &str| (k == "kprobes").then(|| (on as u8).to_string());
        assert!(not_applicable("kprobes", "inside-accepted", "x86_64", &info(false)).is_some());
        assert!(not_applicable("kprobes", "inside-accepted", "x86_64", &info(true)).is_none());
        assert!(not_applicable("sizes", "start-size", "x86_64", &info(false)).is_none());
        let arch_only = Condition::Arch("arm64");
        assert!(arch_only.holds("arm64", &|_| None) && !arch_only.holds("x86_64", &|_| None));
    }

    #[test]
    fn skips_are_declared_per_cell() {
        let cell = |variant, baseline, user_tree| CellKind {
            variant,
            baseline,
            user_tree,
        };
        let patched = |v| cell(v, false, false);
        assert!(skip_declared(
            "kallsyms-selftest",
            "verdict",
            &patched("minimal")
        ));
        assert!(!skip_declared(
            "kallsyms-selftest",
            "verdict",
            &patched("kprobes")
        ));
        assert!(!skip_declared(
            "build",
            "generators-agree",
            &patched("minimal")
        ));
        assert!(skip_declared(
            "build",
            "generators-agree",
            &cell("minimal", true, false)
        ));
        assert!(skip_declared(
            "build",
            "generators-agree",
            &cell("minimal", false, true)
        ));
        for c in ["no-invalid-entries", "filter-all"] {
            assert!(!skip_declared("ftrace", c, &cell("minimal", true, true)));
        }
        assert!(!skip_declared("sizes", "start-size", &patched("minimal")));
    }
}
