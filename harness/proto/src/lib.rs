//! What the host harness and the guest `/init` must agree on: the probe
//! registry, where expectations live in the initramfs, and the framing of the
//! KTAP result stream.
//!
//! Both sides compile this file, so a probe added here is known to the host
//! (test names, filters, timeouts) and to the guest (what to run) at once.

/// Name of the virtio-serial port that carries KTAP results. The kernel
/// console is a different channel: kernel messages never mix with results.
pub const RESULTS_PORT_NAME: &str = "ksh.results";

/// Prefix of the completion record, the mandatory last line of the result
/// stream. A stream without it means the guest crashed or hung.
pub const COMPLETION_RECORD: &str = "# ksh-complete:";

/// Directory in the initramfs that holds the host-computed expectations.
pub const EXPECT_DIR: &str = "/ksh/expect";

/// Expected kallsyms contents, one `ADDR TYPE NAME` line per symbol
/// (address in lowercase hex, no `0x`), in kallsyms order.
pub const EXPECT_KALLSYMS: &str = "/ksh/expect/kallsyms.txt";

/// Facts about the build (`key=value` lines): arch, config, kernel release,
/// whether the kallsyms patches are applied.
pub const EXPECT_BUILD_INFO: &str = "/ksh/expect/build-info.txt";

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

/// Sized kallsyms symbols to look up (`sizes` probe), grouped by address, in
/// table order: `ADDR SIZE NESTED NAME` (hex link-time address; SIZE hex or
/// `-` for an unsized alias; NESTED `1` when another symbol starts inside
/// the symbol, `0` otherwise, `-` when unsized).
pub const EXPECT_SIZES: &str = "/ksh/expect/sizes.txt";

/// Orphaned weak bodies: `START END NAME PRECEDING OBJECT` (hex link-time
/// `[START, END)`; PRECEDING is what a size-blind lookup reports).
pub const EXPECT_ORPHANS: &str = "/ksh/expect/orphans.txt";

/// Weak functions kept (not overridden): `ADDR SIZE TYPE NAME`.
pub const EXPECT_WEAK_KEPT: &str = "/ksh/expect/weak-kept.txt";

/// `%pS` samples: `ADDR OFFSET EXPECTED` (hex address of the symbol start,
/// hex offset, and the exact `%pS` text of `ADDR+OFFSET`).
pub const EXPECT_FORMAT_PS: &str = "/ksh/expect/format-ps.txt";

/// Name prefix of the test-only `__weak` functions of the fixture patch.
pub const FIXTURE_PREFIX: &str = "kallsyms_fixture_";

/// Functions of the probe module: `NAME SIZE` (hex ELF size).
pub const EXPECT_MODULE_SYMS: &str = "/ksh/expect/module-syms.txt";

/// kprobe targets: `ADDR KIND NAME` (KIND `past-end`: NAME's end address,
/// must be refused; `blacklisted`: a function of a blacklisted area, must be
/// refused).
pub const EXPECT_KPROBES: &str = "/ksh/expect/kprobes.txt";

/// kprobes blacklist entries the kernel must create for vmlinux:
/// `START END NAME` (hex link-time `[START, END)`), from the areas that
/// `populate_kprobe_blacklist()` walks and the `NOKPROBE_SYMBOL()` list.
pub const EXPECT_BLACKLIST: &str = "/ksh/expect/blacklist.txt";

/// Addresses of a sized symbol outside the sized symbols nested in it:
/// `ADDR OUTER_START OUTER_SIZE OUTER INNER` (hex link-time); a lookup of
/// ADDR must give OUTER with its size.
pub const EXPECT_NESTED: &str = "/ksh/expect/nested.txt";

/// Symbols without a size, alone at their address: `ADDR START SIZE NAME`
/// (hex link-time; SIZE is the distance to the next symbol). A lookup of
/// ADDR gives NAME+(ADDR-START)/SIZE: the zero-size rule, unchanged by
/// the series.
pub const EXPECT_UNSIZED: &str = "/ksh/expect/unsized.txt";

/// Functions of the probe module's `.kprobes.text` (separated by an
/// alignment gap): both must be in the kprobes blacklist after it loads.
pub const MODULE_KPROBES_FUNCS: &[&str] = &["ksh_probe_kp_small", "ksh_probe_kp_aligned"];

/// The backtrace fixture's function whose last instruction is a call (to a
/// noreturn function): its saved return address is exactly its end.
pub const MODULE_BT_CALLER: &str = "ksh_bt_caller";

/// One probe: a program run inside the guest, in its own process, that
/// reports one KTAP subtest whose cases are listed here.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    /// Third component of test names: `ARCH/CONFIG/PROBE/CASE`.
    pub name: &'static str,
    /// What the probe checks, for `--help` and the README.
    pub about: &'static str,
    /// Wall-clock limit inside the guest (TCG); past it the probe is killed
    /// and its cases are reported as TIMEOUT.
    pub timeout_secs: u32,
    /// The cases it reports, in order.
    pub cases: &'static [&'static str],
    /// Cases that must FAIL on a `--baseline` (unpatched) kernel: they detect
    /// the size-blind lookups. `--expect-baseline-failures` turns their
    /// failure there into a pass, so a probe that stops checking anything
    /// turns CI red.
    pub baseline_failures: &'static [&'static str],
    /// Run with no other probe alongside: `/init` runs probes on every
    /// guest CPU at once, which would disturb a timing probe.
    pub runs_alone: bool,
}

/// Every probe, in the order the guest starts them (and reports them). The
/// guest runs as many at once as it has CPUs, so long probes come early.
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
        name: "proc-kallsyms",
        about: "/proc/kallsyms parses and matches the symbols derived from vmlinux",
        timeout_secs: 30,
        cases: &["format", "names-and-types", "addresses"],
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
        name: "weak-orphans",
        about: "no address inside an overridden weak function's leftover body resolves to a symbol",
        timeout_secs: 30,
        cases: &["fixture", "all"],
        baseline_failures: &["fixture", "all"],
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
        name: "format-pS",
        about: "%pS prints name+0xOFF/0xSIZE with the ELF size for a sample of text symbols",
        timeout_secs: 30,
        cases: &["shape", "real-size"],
        baseline_failures: &["real-size"],
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
        name: "nested-symbols",
        about: "addresses of a sized symbol outside the sized symbols nested in it resolve to the enclosing symbol",
        timeout_secs: 30,
        cases: &["enclosing"],
        // Size-blind lookups give the inner symbol for its enclosing
        // function's tail.
        baseline_failures: &["enclosing"],
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
        name: "ftrace",
        about: "available_filter_functions has no invalid entries and no orphaned weak call sites; filtering on every function and on a module's works",
        timeout_secs: 30,
        cases: &[
            "no-invalid-entries",
            "no-orphan-sites",
            "filter-all",
            "filter-module",
        ],
        baseline_failures: &[],
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

/// How many random text addresses the `lookup-bench` probe looks up.
pub const LOOKUP_BENCH_COUNT: u64 = 10_000;

/// Kernel command-line parameter (`ksh.bench_rounds=N`) with which
/// `cargo xtask bench` asks `lookup-bench` for N rounds (their median is
/// reported); a plain test run does one, to keep boot-to-results short.
pub const BENCH_ROUNDS_PARAM: &str = "ksh.bench_rounds";

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
}
