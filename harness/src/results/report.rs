//! Reporting: every check is a test case named `KERNEL/ARCH/CONFIG/PROBE/CASE`,
//! run through `libtest-mimic` (so `--list`, filters, `--exact` and
//! `--format json` behave as with `cargo test`), and optionally written as
//! JUnit XML (one test suite per arch/config).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use libtest_mimic::Arguments;

use crate::cell::{CellId, Status, TestName};

/// The libtest kind (`test [KIND] NAME`) of a case that measures instead
/// of checking.
pub const MEASURED_KIND: &str = "measured";

/// One test case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Full name, `KERNEL/ARCH/CONFIG/PROBE/CASE` (see [`TestName`]).
    pub name: String,
    pub status: Status,
}

/// All results of one arch/config cell.
#[derive(Debug, Clone)]
pub struct CellReport {
    pub cell: CellId,
    pub cases: Vec<CaseResult>,
    pub elapsed: Duration,
}

/// Whether libtest would run the test `name` under `args` (its filter,
/// `--skip` and `--exact` rules). Used to decide which kernels to build and
/// boot before any test runs.
pub fn is_selected(args: &Arguments, name: &str) -> bool {
    let matches = |pat: &str| {
        if args.exact {
            name == pat
        } else {
            name.contains(pat)
        }
    };
    let included = match &args.filter {
        Some(f) => matches(f),
        None => true,
    };
    included && !args.skip.iter().any(|s| matches(s))
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML for `cells`: one `<testsuite>` per arch/config, one
/// `<testcase>` per case (classname `KERNEL/ARCH/CONFIG/PROBE`, name `CASE`).
pub fn junit_xml(cells: &[CellReport]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for cell in cells {
        let failures = cell.cases.iter().filter(|c| c.status.is_failure()).count();
        let skipped = cell
            .cases
            .iter()
            .filter(|c| matches!(c.status, Status::Skip(_)))
            .count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
            xml_escape(&cell.cell.name()),
            cell.cases.len(),
            cell.elapsed.as_secs_f64()
        );
        for case in &cell.cases {
            let (class, name) = match TestName::parse(&case.name, cell.cell.source) {
                Some(t) => (t.class(), t.case),
                None => (String::new(), case.name.clone()),
            };
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(&class),
                xml_escape(&name)
            );
            match &case.status {
                Status::Pass => x.push_str("/>\n"),
                Status::Measured(figure) => {
                    let _ = writeln!(
                        x,
                        ">\n      <system-out>measured, not a check: {}</system-out>\n    </testcase>",
                        xml_escape(figure)
                    );
                }
                Status::Fail { .. } | Status::NotRun(_) => {
                    let msg = case.status.failure().unwrap_or_default();
                    let first = msg.lines().next().unwrap_or("failed");
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml_escape(first),
                        xml_escape(&msg)
                    );
                }
                Status::Skip(why) => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_escape(why)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// Writes [`junit_xml`] to `path`.
pub fn write_junit(path: &Path, cells: &[CellReport]) -> Result<()> {
    std::fs::write(path, junit_xml(cells)).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::arch::{ARM64, X86_64};
    use crate::cell::{SourceKind, Toolchain};

    fn cell(arch: &'static crate::cell::ArchProfile) -> CellId {
        CellId::new(arch, "minimal", Toolchain::Gcc, SourceKind::Patched)
    }

    fn args(v: &[&str]) -> Arguments {
        let mut all = vec!["test"];
        all.extend_from_slice(v);
        Arguments::from_iter(all)
    }

    #[test]
    fn selection_follows_libtest_rules() {
        assert!(is_selected(&args(&[]), "6.12/arm64/minimal/boot/init-ran"));
        assert!(is_selected(
            &args(&["arm64/"]),
            "6.12/arm64/minimal/boot/init-ran"
        ));
        assert!(!is_selected(
            &args(&["arm64/"]),
            "6.12/x86_64/minimal/boot/init-ran"
        ));
        assert!(!is_selected(
            &args(&["--exact", "arm64/"]),
            "6.12/arm64/minimal/boot/init-ran"
        ));
        assert!(is_selected(
            &args(&["--exact", "6.12/arm64/minimal/boot/init-ran"]),
            "6.12/arm64/minimal/boot/init-ran"
        ));
        assert!(!is_selected(
            &args(&["--skip", "boot"]),
            "6.12/arm64/minimal/boot/init-ran"
        ));
    }

    #[test]
    fn junit_has_one_suite_per_cell_and_escapes() {
        let cells = vec![
            CellReport {
                cell: cell(&X86_64),
                cases: vec![
                    CaseResult {
                        name: "6.12/x86_64/minimal/boot/init-ran".into(),
                        status: Status::Pass,
                    },
                    CaseResult {
                        name: "6.12/x86_64/minimal/sizes/start".into(),
                        status: Status::fail(
                            "size <0x10> & \"bad\"\nconsole log: /r/console.log".into(),
                        ),
                    },
                ],
                elapsed: Duration::from_millis(1500),
            },
            CellReport {
                cell: cell(&ARM64),
                cases: vec![CaseResult {
                    name: "6.12/arm64/minimal/kprobes/past-end".into(),
                    status: Status::Skip("no KPROBES".into()),
                }],
                elapsed: Duration::from_secs(2),
            },
        ];
        let x = junit_xml(&cells);
        assert_eq!(x.matches("<testsuite ").count(), 2);
        assert!(x.contains("name=\"6.12/x86_64/minimal\" tests=\"2\" failures=\"1\""));
        assert!(x.contains("classname=\"6.12/x86_64/minimal/sizes\" name=\"start\""));
        assert!(x.contains("size &lt;0x10&gt; &amp; &quot;bad&quot;"));
        assert!(x.contains("console log: /r/console.log"));
        assert!(x.contains("<skipped message=\"no KPROBES\"/>"));
    }

    #[test]
    fn junit_reports_not_run_as_a_failure_and_a_measurement_as_such() {
        let x = junit_xml(&[CellReport {
            cell: cell(&X86_64),
            cases: vec![
                CaseResult {
                    name: "6.12/x86_64/minimal/sizes/start-size".into(),
                    status: Status::NotRun("the kernel build failed".into()),
                },
                CaseResult {
                    name: "6.12/x86_64/minimal/lookup-bench/measured".into(),
                    status: Status::Measured("lookup_ns=120 format_ns=340".into()),
                },
            ],
            elapsed: Duration::from_secs(1),
        }]);
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("<failure message=\"not run: the kernel build failed\">"));
        assert!(x.contains(
            "<system-out>measured, not a check: lookup_ns=120 format_ns=340</system-out>"
        ));
    }
}
