//! `cargo xtask summary`: the markdown a CI job shows for its run (GitHub's
//! `$GITHUB_STEP_SUMMARY`), read from the JUnit XML that `test --junit`
//! writes (`harness::results::report::junit_xml`: one `<testsuite>` per
//! cell, one `<testcase>` per case, a `<failure message="FIRST LINE">` or
//! `<skipped>` inside). Per cell one table: its passed, failed and skipped
//! counts, then each failed case with the first line of its message, so a
//! red cell can be read without downloading its artifacts.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::flags::SummaryArgs;

/// A failure message longer than this is cut (the rest is in the JUnit
/// file and the run dir it names).
const MESSAGE_CHARS: usize = 200;

/// One test suite of the file: a cell, `KERNEL/ARCH/CONFIG`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub name: String,
    pub passed: usize,
    pub skipped: usize,
    pub failed: Vec<Failure>,
}

/// A failed case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The full test name, `KERNEL/ARCH/CONFIG/PROBE/CASE`: what `cargo xtask
    /// test -- NAME` reruns.
    pub name: String,
    /// The first line of its failure message.
    pub message: String,
}

pub fn run(args: SummaryArgs) -> Result<i32> {
    let cells = read(&args.junit)?;
    print!("{}", markdown(&cells));
    Ok(0)
}

/// The cells of the JUnit file at `path`; errors name the file.
pub fn read(path: &Path) -> Result<Vec<Cell>> {
    let xml = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the JUnit file {}", path.display()))?;
    parse(&xml).with_context(|| {
        format!(
            "{} is not JUnit XML as `cargo xtask test --junit` writes it",
            path.display()
        )
    })
}

/// What a `<testcase>` came to.
enum Outcome {
    Pass,
    Skip,
    Fail(String),
}

/// Parses the JUnit XML `xml`: a `<testsuites>` root, suites in it, cases
/// in those. Other elements (`<properties>`, `<system-out>`) are ignored;
/// a known one in the wrong place, a missing name, unbalanced tags or a
/// suite whose counts disagree with its cases is an error.
pub fn parse(xml: &str) -> Result<Vec<Cell>> {
    let mut reader = Reader::from_str(xml);
    let mut open: Vec<String> = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    // The declared counts of the open suite: tests, failures, skipped.
    let mut declared: [Option<usize>; 3] = [None; 3];
    // The open case: its full name and outcome so far.
    let mut case: Option<(String, Outcome)> = None;
    let mut seen_root = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            anyhow!(
                "line {}: {e}",
                line_of(xml, reader.error_position() as usize)
            )
        })?;
        let at = || line_of(xml, reader.buffer_position() as usize);
        let (start, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                let name = open.pop().unwrap_or_default();
                close(&name, &mut cells, &mut case, &declared)
                    .with_context(|| format!("line {}", at()))?;
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = start.name().as_ref().to_string();
        let parent = open.last().map(String::as_str);
        let misplaced = |want: &str| {
            anyhow!(
                "line {}: <{name}> {}",
                at(),
                match parent {
                    Some(p) => format!("inside <{p}>, not <{want}>"),
                    None => format!("as the root, not inside <{want}>"),
                }
            )
        };
        match name.as_str() {
            "testsuites" if parent.is_none() => seen_root = true,
            _ if parent.is_none() => bail!("line {}: the root is <{name}>, not <testsuites>", at()),
            "testsuites" => return Err(misplaced("nothing")),
            "testsuite" if parent == Some("testsuites") => {
                let count = |key| -> Result<Option<usize>> {
                    attr(&start, key)?
                        .map(|v| {
                            v.parse()
                                .with_context(|| format!("<testsuite {key}=\"{v}\">"))
                        })
                        .transpose()
                };
                declared = [count("tests")?, count("failures")?, count("skipped")?];
                cells.push(Cell {
                    name: required(&start, "name").with_context(|| format!("line {}", at()))?,
                    ..Cell::default()
                });
            }
            "testsuite" => return Err(misplaced("testsuites")),
            "testcase" if parent == Some("testsuite") => {
                let case_name =
                    required(&start, "name").with_context(|| format!("line {}", at()))?;
                let full = match attr(&start, "classname")? {
                    Some(class) if !class.is_empty() => format!("{class}/{case_name}"),
                    _ => case_name,
                };
                case = Some((full, Outcome::Pass));
            }
            "testcase" => return Err(misplaced("testsuite")),
            "failure" | "error" | "skipped" if parent == Some("testcase") => {
                let (_, outcome) = case.as_mut().expect("a case is open inside <testcase>");
                // A failure stays a failure whatever follows it.
                if !matches!(outcome, Outcome::Fail(_)) {
                    *outcome = if name == "skipped" {
                        Outcome::Skip
                    } else {
                        Outcome::Fail(
                            attr(&start, "message")?
                                .and_then(|m| m.lines().next().map(str::to_string))
                                .filter(|m| !m.trim().is_empty())
                                .unwrap_or_else(|| "(no message)".to_string()),
                        )
                    };
                }
            }
            "failure" | "error" | "skipped" => return Err(misplaced("testcase")),
            _ => {}
        }
        if empty {
            close(&name, &mut cells, &mut case, &declared)
                .with_context(|| format!("line {}", at()))?;
        } else {
            open.push(name);
        }
    }
    if let Some(inner) = open.last() {
        bail!("the file ends inside <{inner}> (cut short?)");
    }
    if !seen_root {
        bail!("no <testsuites> element (empty file?)");
    }
    Ok(cells)
}

/// The end of element `name`: a case is counted in its cell; a cell's
/// counts must be the ones its `<testsuite>` declared.
fn close(
    name: &str,
    cells: &mut [Cell],
    case: &mut Option<(String, Outcome)>,
    declared: &[Option<usize>; 3],
) -> Result<()> {
    match name {
        "testcase" => {
            let (full, outcome) = case.take().expect("a case is open at </testcase>");
            let cell = cells.last_mut().expect("a suite is open at </testcase>");
            match outcome {
                Outcome::Pass => cell.passed += 1,
                Outcome::Skip => cell.skipped += 1,
                Outcome::Fail(message) => cell.failed.push(Failure {
                    name: full,
                    message,
                }),
            }
        }
        "testsuite" => {
            let cell = cells.last().expect("a suite is open at </testsuite>");
            let found = [
                cell.passed + cell.skipped + cell.failed.len(),
                cell.failed.len(),
                cell.skipped,
            ];
            for ((key, want), got) in ["tests", "failures", "skipped"]
                .iter()
                .zip(declared)
                .zip(found)
            {
                if want.is_some_and(|w| w != got) {
                    bail!(
                        "suite {} declares {key}=\"{}\" but holds {got}",
                        cell.name,
                        want.unwrap()
                    );
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn attr(e: &BytesStart, key: &str) -> Result<Option<String>> {
    let Some(a) = e.try_get_attribute(key)? else {
        return Ok(None);
    };
    Ok(Some(
        a.normalized_value(XmlVersion::Implicit1_0)?.into_owned(),
    ))
}

fn required(e: &BytesStart, key: &str) -> Result<String> {
    attr(e, key)?.ok_or_else(|| anyhow!("<{}> without {key}=", e.name().as_ref()))
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The job summary: per cell a heading that gives its verdict and one
/// table of its counts and its failed cases.
pub fn markdown(cells: &[Cell]) -> String {
    let mut md = String::new();
    if cells.is_empty() {
        md.push_str("No cell ran: the JUnit file holds no test suite.\n");
        return md;
    }
    for cell in cells {
        let failed = cell.failed.len();
        let total = cell.passed + cell.skipped + failed;
        let _ = if failed == 0 {
            writeln!(md, "### ✅ {}: no failures", text(&cell.name))
        } else {
            writeln!(
                md,
                "### ❌ {}: {failed} of {total} failed",
                text(&cell.name)
            )
        };
        md.push_str("\n| cases | count, or the failure's first line |\n|---|---|\n");
        let _ = writeln!(md, "| passed | {} |", cell.passed);
        let _ = writeln!(md, "| failed | {failed} |");
        let _ = writeln!(md, "| skipped | {} |", cell.skipped);
        for f in &cell.failed {
            let _ = writeln!(md, "| ❌ {} | {} |", code(&f.name), text(&cut(&f.message)));
        }
        md.push('\n');
    }
    md
}

/// `s` cut to [`MESSAGE_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `s` as literal markdown text inside a table cell: punctuation that
/// markdown or HTML would act on is backslash-escaped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\`*_[]<>|~&".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as a code span inside a table cell (plain text if it holds a
/// backtick).
fn code(s: &str) -> String {
    if s.contains('`') {
        text(s)
    } else {
        format!("`{}`", s.replace('|', "\\|"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use harness::cell::{CellId, SourceKind, Status};
    use harness::results::report::{junit_xml, CaseResult, CellReport};

    /// The saved failing JUnit file (`xtask/tests/data/`), as the harness
    /// writes it: `saved_file_is_the_harness_output` keeps it so.
    const FAILING: &str = include_str!("../tests/data/junit-failing.xml");

    /// What the saved file holds, as the harness's own reports.
    fn failing_reports() -> Vec<CellReport> {
        let case = |name: &str, status: Status| CaseResult {
            name: name.to_string(),
            status,
        };
        let pass = Status::Pass;
        let fail = |m: &str| Status::fail(m.to_string());
        let x86 = "6.12/x86_64/minimal-llvm";
        let where_to_look = "console log: target/ksh/runs/6.12.57-1~deb12u1-patched/x86_64-minimal-llvm/1765140000-4242/console.log\n\
             results: target/ksh/runs/6.12.57-1~deb12u1-patched/x86_64-minimal-llvm/1765140000-4242/results.ktap\n\
             to explore: cargo xtask run --arch x86_64 --config minimal --toolchain llvm";
        vec![
            CellReport {
                cell: CellId::parse_name(x86, SourceKind::Patched).unwrap(),
                cases: vec![
                    case(&format!("{x86}/build/kernel"), pass.clone()),
                    case(&format!("{x86}/boot/vm-completed"), pass.clone()),
                    case(
                        &format!("{x86}/boot/no-kernel-warnings"),
                        fail(&format!(
                            "1 kernel warning line(s) not explained by kernel-configs/boot-log-allow.txt (2 allowed):\n  \
                             [    0.912204] WARNING: CPU: 1 PID: 1 at kernel/kallsyms.c:211 kallsyms_lookup_size_offset+0x9c/0xc0\n\
                             {where_to_look}"
                        )),
                    ),
                    case(
                        &format!("{x86}/sizes/start-size"),
                        fail(&format!(
                            "3 of 25791 symbols: want do_one_initcall+0x0/0x1f0, kernel do_one_initcall+0x0/0x0 <size-blind> & 2 more\n\
                             {where_to_look}"
                        )),
                    ),
                    case(&format!("{x86}/sizes/last-byte"), pass.clone()),
                    case(
                        &format!("{x86}/kprobes/past-end-refused"),
                        Status::Skip("CONFIG_KPROBES is not set".into()),
                    ),
                ],
                elapsed: Duration::from_millis(281_250),
            },
            CellReport {
                cell: CellId::parse_name("6.12/arm64/minimal-llvm", SourceKind::Patched).unwrap(),
                cases: vec![
                    case("6.12/arm64/minimal-llvm/build/kernel", pass.clone()),
                    case("6.12/arm64/minimal-llvm/boot/vm-completed", pass.clone()),
                    case("6.12/arm64/minimal-llvm/sizes/start-size", pass.clone()),
                    case(
                        "6.12/arm64/minimal-llvm/kprobes/past-end-refused",
                        Status::Skip("CONFIG_KPROBES is not set".into()),
                    ),
                ],
                elapsed: Duration::from_millis(402_500),
            },
        ]
    }

    #[test]
    fn saved_file_is_the_harness_output() {
        assert_eq!(
            junit_xml(&failing_reports()),
            FAILING,
            "tests/data/junit-failing.xml is no longer what report::junit_xml writes: \
             write it again from failing_reports()"
        );
    }

    #[test]
    fn failing_file_gives_counts_and_first_lines() {
        let cells = parse(FAILING).unwrap();
        assert_eq!(cells.len(), 2);
        let x86 = &cells[0];
        assert_eq!(x86.name, "6.12/x86_64/minimal-llvm");
        assert_eq!((x86.passed, x86.failed.len(), x86.skipped), (3, 2, 1));
        assert_eq!(
            x86.failed[0],
            Failure {
                name: "6.12/x86_64/minimal-llvm/boot/no-kernel-warnings".into(),
                message: "1 kernel warning line(s) not explained by \
                          kernel-configs/boot-log-allow.txt (2 allowed):"
                    .into(),
            }
        );
        // Entities come back as text.
        assert!(
            x86.failed[1].message.ends_with("<size-blind> & 2 more"),
            "{}",
            x86.failed[1].message
        );
        let arm = &cells[1];
        assert_eq!((arm.passed, arm.failed.len(), arm.skipped), (3, 0, 1));
    }

    #[test]
    fn markdown_has_one_table_per_cell_and_says_when_none_failed() {
        let md = markdown(&parse(FAILING).unwrap());
        assert_eq!(md.matches("\n|---|---|\n").count(), 2, "{md}");
        assert!(
            md.contains("### ❌ 6.12/x86\\_64/minimal-llvm: 2 of 6 failed\n"),
            "{md}"
        );
        assert!(
            md.contains("### ✅ 6.12/arm64/minimal-llvm: no failures\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| ❌ `6.12/x86_64/minimal-llvm/sizes/start-size` | 3 of 25791 symbols: want \
             do\\_one\\_initcall+0x0/0x1f0, kernel do\\_one\\_initcall+0x0/0x0 \
             \\<size-blind\\> \\& 2 more |"
            ),
            "{md}"
        );
        // Only first lines: nothing of the console paths.
        assert!(!md.contains("console log"), "{md}");
        let expected = include_str!("../tests/data/junit-failing.md");
        assert_eq!(
            md, expected,
            "tests/data/junit-failing.md is the rendered summary"
        );
    }

    #[test]
    fn message_is_cut_and_table_syntax_escaped() {
        let cells = vec![Cell {
            name: "x86_64/minimal".into(),
            passed: 0,
            skipped: 0,
            failed: vec![Failure {
                name: "x86_64/minimal/a|b/c".into(),
                message: format!("a|b {}", "x".repeat(300)),
            }],
        }];
        let md = markdown(&cells);
        let row = md.lines().find(|l| l.starts_with("| ❌")).unwrap();
        assert!(
            row.starts_with("| ❌ `x86_64/minimal/a\\|b/c` | a\\|b xxx"),
            "{row}"
        );
        assert!(row.ends_with("x… |"), "{row}");
        // 196 of the message's x (200 characters with "a|b "), 1 of the name's.
        assert_eq!(row.matches('x').count(), 196 + 1, "{row}");
    }

    #[test]
    fn no_suites_says_so() {
        let cells = parse("<?xml version=\"1.0\"?>\n<testsuites>\n</testsuites>\n").unwrap();
        assert!(cells.is_empty());
        assert!(markdown(&cells).starts_with("No cell ran"));
    }

    #[test]
    fn malformed_files_are_errors_that_say_why() {
        let err = |xml: &str| format!("{:#}", parse(xml).unwrap_err());
        assert!(err("").contains("no <testsuites>"), "{}", err(""));
        let cut_short = &FAILING[..FAILING.find("  </testsuite>").unwrap()];
        let e = err(cut_short);
        assert!(e.contains("ends inside <testsuite> (cut short?)"), "{e}");
        // Cut inside a tag: the parser's own error, with the line.
        let e = err(&FAILING[..FAILING.find("&lt;size").unwrap()]);
        assert!(e.starts_with("line 14: "), "{e}");
        // (file, what its error must say)
        let cases = [
            (
                "<testsuite name=\"a\"></testsuite>",
                "the root is <testsuite>",
            ),
            (
                "<testsuites><testcase name=\"a\"/></testsuites>",
                "<testcase> inside <testsuites>, not <testsuite>",
            ),
            (
                "<testsuites><testsuite><testcase name=\"a\"/></testsuite></testsuites>",
                "<testsuite> without name=",
            ),
            (
                "<testsuites><testsuite name=\"s\" tests=\"2\"><testcase name=\"a\"/></testsuite></testsuites>",
                "suite s declares tests=\"2\" but holds 1",
            ),
            (
                "<testsuites><testsuite name=\"s\"></testcase></testsuites>",
                "line 1",
            ),
            (
                "<testsuites>\n<testsuite name=\"s\" tests=\"x\"/>\n</testsuites>",
                "tests=\"x\"",
            ),
        ];
        for (xml, want) in cases {
            let e = err(xml);
            assert!(e.contains(want), "{xml}: {want:?} not in {e}");
        }
    }

    #[test]
    fn read_names_the_file() {
        let dir = tempfile_dir();
        let missing = dir.join("missing.xml");
        let e = format!("{:#}", read(&missing).unwrap_err());
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("cannot read the JUnit file"), "{e}");
        let bad = dir.join("bad.xml");
        std::fs::write(&bad, "<testsuites><testsuite name=\"s\">").unwrap();
        let e = format!("{:#}", read(&bad).unwrap_err());
        assert!(e.contains(&bad.display().to_string()), "{e}");
        assert!(e.contains("cut short"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ksh-summary-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
