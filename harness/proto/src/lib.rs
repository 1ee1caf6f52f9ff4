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
}

/// Every probe, in the order the guest runs them. To add a probe: add an
/// entry here and a module under `harness/guest/src/probes/`.
pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        name: "boot",
        about: "the kernel booted and /init ran with its filesystems mounted",
        timeout_secs: 5,
        cases: &["init-ran", "filesystems-mounted"],
    },
    ProbeSpec {
        name: "proc-kallsyms",
        about: "/proc/kallsyms parses and matches the symbols derived from vmlinux",
        timeout_secs: 30,
        cases: &["format", "names-and-types", "addresses"],
    },
];

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
        }
    }
}
