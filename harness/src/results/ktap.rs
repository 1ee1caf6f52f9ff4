//! Parser for the KTAP stream the guest writes on the results port.
//!
//! The format is specified in the kernel's
//! `Documentation/dev-tools/ktap.rst`. The parser is built around two
//! requirements that pull in opposite directions:
//!
//! - **Tolerant of noise.** The channel can carry lines that are not KTAP at
//!   all (kernel messages that leaked in, blank lines, a half-written line
//!   from a crashing guest). Such lines never abort parsing; like `#`
//!   diagnostic lines they are kept, in order, as diagnostics of the result
//!   that follows them, so a failure report shows what the guest printed.
//! - **Strict about structure.** Anything that could make a broken run look
//!   like a passing one is a [`ParseError`]: fewer results than the plan at
//!   any level, a subtest with no result line (synthesised as a failure so it
//!   is never silently missing), result numbers out of sequence, a result
//!   line that cannot be parsed, a plan that does not match, a parent that
//!   says `ok` over a failed subtest, output after the completion record.
//!
//! Nesting follows indentation: a version line (`KTAP version 1`, `TAP
//! version 14`), `# Subtest: name` line, plan or result line indented deeper
//! than the current block opens a nested block, and the next result line at
//! the enclosing indentation closes it and becomes its parent. The width of
//! one level is not fixed: the KTAP spec says two spaces, KUnit prints four,
//! older KUnit logs use tabs; each block simply has the indentation of its
//! first line.
//!
//! The guest ends the stream with a completion record (a line starting with
//! a prefix the caller passes in, `ksh_proto::COMPLETION_RECORD`); its
//! absence means the guest crashed or hung, which the caller reports. The
//! prefix is a parameter so this module depends on no other crate of ours.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// How a test ended: the `ok`/`not ok` result refined by its directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Outcome {
    /// `ok` without a (recognised) directive.
    Pass,
    /// `not ok` without a directive, or with `# ERROR`; also a subtest whose
    /// result line never came (see [`TestResult::line_no`]).
    Fail,
    /// `# SKIP`, whether the result is `ok` or `not ok`.
    Skip,
    /// `# XFAIL`: failed, as expected.
    Xfail,
    /// `# TIMEOUT`.
    Timeout,
    /// `# TODO` (inherited from TAP; discouraged in the kernel).
    Todo,
}

impl Outcome {
    /// Whether a parent reporting `ok` over a subtest with this outcome is
    /// a contradiction.
    fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Timeout)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Xfail => "xfail",
            Outcome::Timeout => "timeout",
            Outcome::Todo => "todo",
        })
    }
}

/// One result line, with what the stream said about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestResult {
    /// The test number from the result line.
    pub number: usize,
    /// The description from the result line (a TAP-style leading `- ` is
    /// dropped); for a subtest whose result line is missing, the name from
    /// its `# Subtest:` header, if any.
    pub name: String,
    /// `ok` (true) or `not ok` (false) as written; `false` if synthesised.
    pub ok: bool,
    pub outcome: Outcome,
    /// The recognised directive keyword, upper-cased (`SKIP`, `TODO`,
    /// `XFAIL`, `TIMEOUT`, `ERROR`), if any.
    pub directive: Option<String>,
    /// The text after `#` on the result line, without the directive keyword
    /// (the skip reason, the timeout, or free-form data like `rcode=0`).
    pub directive_reason: Option<String>,
    /// Lines between the previous result at this level (or the start of the
    /// block) and this result line, excluding nested results and headers:
    /// `#` diagnostics and unrecognised lines alike, without indentation.
    pub diagnostics: Vec<String>,
    /// Results of the nested block just above this result line.
    pub subtests: Vec<TestResult>,
    /// The nested block's plan (`1..N`), if it had one.
    pub plan: Option<usize>,
    /// 1-based line of the result line; 0 for a result synthesised because
    /// the stream ended (or moved on) before the subtest's result line.
    pub line_no: usize,
}

impl TestResult {
    /// Looks up a descendant by names, e.g. `["suite", "case"]`.
    pub fn find(&self, path: &[&str]) -> Option<&TestResult> {
        find_in(&self.subtests, path)
    }
}

/// A structural problem in the stream. Any of these means the run's
/// results cannot be trusted as a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseError {
    /// 1-based line number; 0 if the problem concerns the stream as a whole
    /// (no KTAP header at all).
    pub line_no: usize,
    /// The offending line (without line terminator), or "" for line 0.
    pub line: String,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {}: {:?}",
            self.line_no, self.message, self.line
        )
    }
}

/// The parsed stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The top-level version line, e.g. `KTAP version 1`.
    pub version: Option<String>,
    /// The top-level plan.
    pub plan: Option<usize>,
    /// The top-level results.
    pub tests: Vec<TestResult>,
    /// Top-level lines after the last result, which no result claims
    /// (trailing kernel messages, a diagnostic before a crash).
    pub diagnostics: Vec<String>,
    /// The completion record line (trimmed), if the guest got that far.
    pub completion: Option<String>,
    pub errors: Vec<ParseError>,
}

impl Report {
    /// Looks up a result by names from the top level, e.g.
    /// `["boot", "init-ran"]`. With duplicate names the first one wins.
    pub fn find(&self, path: &[&str]) -> Option<&TestResult> {
        find_in(&self.tests, path)
    }

    /// The stream completed and is structurally sound. (Individual tests
    /// may still have failed.)
    pub fn is_clean(&self) -> bool {
        self.completion.is_some() && self.errors.is_empty()
    }
}

fn find_in<'a>(tests: &'a [TestResult], path: &[&str]) -> Option<&'a TestResult> {
    let (first, rest) = path.split_first()?;
    let t = tests.iter().find(|t| t.name == *first)?;
    if rest.is_empty() {
        Some(t)
    } else {
        find_in(&t.subtests, rest)
    }
}

/// [`parse`] for the raw bytes of the channel; invalid UTF-8 (a torn
/// multi-byte character, binary junk) becomes U+FFFD instead of failing.
pub fn parse_bytes(input: &[u8], completion_prefix: &str) -> Report {
    parse(&String::from_utf8_lossy(input), completion_prefix)
}

/// Parses a KTAP stream. Never fails: problems end up in
/// [`Report::errors`], a missing completion record in
/// [`Report::completion`] being `None`.
pub fn parse(input: &str, completion_prefix: &str) -> Report {
    let mut p = Parser::new();
    let mut lines = 0;
    for (i, raw) in input.lines().enumerate() {
        lines = i + 1;
        p.line(i + 1, raw, completion_prefix);
    }
    p.finish(lines)
}

/// What a line is, independent of where it is.
#[derive(Debug)]
enum Kind<'a> {
    Version,
    Subtest(&'a str),
    Plan(usize),
    Result(ResultLine),
    BadResult(&'static str),
    /// A `#` line or anything unrecognised.
    Other,
}

#[derive(Debug)]
struct ResultLine {
    ok: bool,
    number: usize,
    name: String,
    directive: Option<String>,
    reason: Option<String>,
}

static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^K?TAP version \d+$").unwrap());
static PLAN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^1\.\.(\d+)(?:\s*#.*)?$").unwrap());
static SUBTEST: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^#\s*Subtest:\s*(.*)$").unwrap());

const DIRECTIVES: [&str; 5] = ["SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR"];

fn classify(content: &str) -> Kind<'_> {
    if VERSION.is_match(content) {
        return Kind::Version;
    }
    if let Some(c) = SUBTEST.captures(content) {
        return Kind::Subtest(c.get(1).map_or("", |m| m.as_str()));
    }
    if let Some(c) = PLAN.captures(content) {
        return match c[1].parse() {
            Ok(n) => Kind::Plan(n),
            Err(_) => Kind::BadResult("plan count out of range"),
        };
    }
    match parse_result(content) {
        Some(Ok(r)) => Kind::Result(r),
        Some(Err(msg)) => Kind::BadResult(msg),
        None => Kind::Other,
    }
}

/// `None` if the line is not a result line at all; `Some(Err)` if it starts
/// like one (`ok`/`not ok` as a word) but is malformed.
fn parse_result(content: &str) -> Option<Result<ResultLine, &'static str>> {
    let (ok, rest) = match content.strip_prefix("not ok") {
        Some(rest) => (false, rest),
        None => (true, content.strip_prefix("ok")?),
    };
    // "okay", "not okay" are prose, not results.
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim_start();
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return Some(Err("result line without a test number"));
    }
    let Ok(number) = rest[..digits].parse() else {
        return Some(Err("test number out of range"));
    };
    let rest = &rest[digits..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t', '#'])) {
        return Some(Err("unparseable text after the test number"));
    }
    let (desc, comment) = match rest.split_once('#') {
        Some((d, c)) => (d, Some(c.trim())),
        None => (rest, None),
    };
    let desc = desc.trim();
    let name = desc
        .strip_prefix('-')
        .map_or(desc, str::trim_start)
        .to_string();

    let mut directive = None;
    let mut reason = comment.filter(|c| !c.is_empty()).map(str::to_string);
    if let Some(c) = comment {
        let word = c.split_whitespace().next().unwrap_or("");
        let keyword = word.trim_end_matches(':').to_ascii_uppercase();
        if DIRECTIVES.contains(&keyword.as_str()) {
            let r = c[word.len()..].trim();
            reason = (!r.is_empty()).then(|| r.to_string());
            directive = Some(keyword);
        }
    }
    Some(Ok(ResultLine {
        ok,
        number,
        name,
        directive,
        reason,
    }))
}

fn outcome(ok: bool, directive: Option<&str>) -> Outcome {
    match directive {
        Some("SKIP") => Outcome::Skip,
        Some("TODO") => Outcome::Todo,
        Some("XFAIL") => Outcome::Xfail,
        Some("TIMEOUT") => Outcome::Timeout,
        Some("ERROR") => Outcome::Fail,
        _ if ok => Outcome::Pass,
        _ => Outcome::Fail,
    }
}

/// An open block of results at one indentation.
#[derive(Debug, Default)]
struct Frame {
    /// Indentation of the block's lines; `None` for the top level until its
    /// first structural line.
    indent: Option<usize>,
    /// Where the block started (its first header line), for error messages.
    start: (usize, String),
    version: Option<String>,
    subtest_name: Option<String>,
    plan: Option<(usize, usize, String)>,
    results: Vec<TestResult>,
    /// Diagnostics since the last result here, with line numbers so that
    /// lines from a closed nested block merge in stream order.
    pending: Vec<(usize, String)>,
    /// A nested block that has ended and waits for its result line here.
    closed: Option<Closed>,
}

impl Frame {
    /// Nothing structural has happened in the block beyond its headers, so
    /// a second header line (version after `# Subtest:` or vice versa)
    /// still belongs to it.
    fn is_fresh(&self) -> bool {
        self.plan.is_none() && self.results.is_empty() && self.closed.is_none()
    }

    fn indent(&self) -> usize {
        self.indent.unwrap_or(0)
    }
}

/// A nested block whose lines have ended.
#[derive(Debug)]
struct Closed {
    name: Option<String>,
    plan: Option<usize>,
    results: Vec<TestResult>,
    start: (usize, String),
}

struct Parser {
    /// Open blocks, outermost (the top level) first; never empty.
    stack: Vec<Frame>,
    completion: Option<String>,
    errors: Vec<ParseError>,
}

impl Parser {
    fn new() -> Self {
        Parser {
            stack: vec![Frame::default()],
            completion: None,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, line_no: usize, line: &str, message: impl Into<String>) {
        self.errors.push(ParseError {
            line_no,
            line: line.to_string(),
            message: message.into(),
        });
    }

    fn top(&mut self) -> &mut Frame {
        self.stack
            .last_mut()
            .expect("the top level is never popped")
    }

    fn line(&mut self, line_no: usize, raw: &str, completion_prefix: &str) {
        // `str::lines` already dropped "\n" and one "\r"; a serial console
        // may add more.
        let line = raw.trim_end();
        let content = line.trim_start();
        let indent = line.len() - content.len();

        if !completion_prefix.is_empty() && content.starts_with(completion_prefix) {
            if self.completion.is_some() {
                self.error(line_no, line, "second completion record");
            } else {
                self.completion = Some(content.to_string());
            }
            return;
        }

        let kind = classify(content);
        if self.completion.is_some() {
            if !matches!(kind, Kind::Other) {
                self.error(line_no, line, "KTAP output after the completion record");
            }
            // Keep it visible, but it can no longer change any result.
            self.stack[0].pending.push((line_no, content.to_string()));
            return;
        }

        match kind {
            Kind::Other => self.diagnostic(line_no, indent, content),
            Kind::BadResult(msg) => {
                self.error(line_no, line, msg);
                self.diagnostic(line_no, indent, content);
            }
            Kind::Version => self.header(line_no, line, indent, content, None),
            Kind::Subtest(name) => self.header(line_no, line, indent, content, Some(name)),
            Kind::Plan(n) => {
                let frame = self.enter(line_no, line, indent);
                if let Some((_, l, _)) = &frame.plan {
                    let msg = format!("second plan in one block (first on line {l})");
                    self.error(line_no, line, msg);
                } else {
                    frame.plan = Some((n, line_no, line.to_string()));
                }
            }
            Kind::Result(r) => {
                self.enter(line_no, line, indent);
                self.result(line_no, line, r);
            }
        }
    }

    /// A `#` line sits at the indentation of the block it belongs to (a
    /// parent's diagnostic can follow its subtests' output); any other line
    /// is noise that belongs to whatever block is running.
    fn diagnostic(&mut self, line_no: usize, indent: usize, content: &str) {
        let depth = if content.starts_with('#') {
            self.stack
                .iter()
                .rposition(|f| f.indent() <= indent)
                .unwrap_or(0)
        } else {
            self.stack.len() - 1
        };
        self.stack[depth]
            .pending
            .push((line_no, content.to_string()));
    }

    /// Closes the blocks indented deeper than `indent`.
    fn close_deeper(&mut self, indent: usize) {
        while self.stack.len() > 1 && indent < self.top().indent() {
            self.pop();
        }
    }

    /// Pops the innermost block and hands it to its parent, where it waits
    /// for its result line.
    fn pop(&mut self) {
        let mut frame = self.stack.pop().expect("not the top level");
        self.flush_closed(&mut frame, "has no result line");
        self.check_plan(&frame);
        let closed = Closed {
            name: frame.subtest_name,
            plan: frame.plan.map(|(n, _, _)| n),
            results: frame.results,
            start: frame.start,
        };
        let mut parent = self.stack.pop().expect("top level");
        parent.pending.append(&mut frame.pending);
        parent.pending.sort_by_key(|(l, _)| *l);
        self.flush_closed(&mut parent, "has no result line");
        parent.closed = Some(closed);
        self.stack.push(parent);
    }

    /// If `frame` holds a nested block that never got its result line,
    /// records an error and adds a failed result for it, so the block's
    /// results stay reachable and nothing in it can count as a pass.
    fn flush_closed(&mut self, frame: &mut Frame, why: &str) {
        let Some(c) = frame.closed.take() else { return };
        let what = match &c.name {
            Some(n) => format!("subtest {n:?}"),
            None => "nested block".to_string(),
        };
        self.error(c.start.0, &c.start.1, format!("{what} {why}"));
        let number = frame.results.last().map_or(1, |r| r.number + 1);
        frame.results.push(TestResult {
            number,
            name: c.name.unwrap_or_default(),
            ok: false,
            outcome: Outcome::Fail,
            directive: None,
            directive_reason: Some(format!("{what} {why}")),
            diagnostics: frame.pending.drain(..).map(|(_, l)| l).collect(),
            subtests: c.results,
            plan: c.plan,
            line_no: 0,
        });
    }

    fn check_plan(&mut self, frame: &Frame) {
        let Some((n, l, line)) = &frame.plan else {
            return;
        };
        let got = frame.results.len();
        if got < *n {
            self.error(
                *l,
                line,
                format!("truncated: plan of {n} but only {got} results"),
            );
        } else if got > *n {
            self.error(*l, line, format!("plan of {n} but {got} results"));
        }
    }

    /// Makes the block at `indent` the innermost one (closing deeper ones,
    /// opening a nested one for a deeper line) and returns it.
    fn enter(&mut self, line_no: usize, line: &str, indent: usize) -> &mut Frame {
        if self.stack.len() == 1 && self.stack[0].indent.is_none() {
            self.stack[0].indent = Some(indent);
            self.stack[0].start = (line_no, line.to_string());
        }
        self.close_deeper(indent);
        if indent > self.top().indent() {
            self.open(line_no, line, indent);
        }
        self.top()
    }

    fn open(&mut self, line_no: usize, line: &str, indent: usize) {
        let mut parent = self.stack.pop().expect("top level");
        self.flush_closed(
            &mut parent,
            "has no result line before the next nested block",
        );
        self.stack.push(parent);
        self.stack.push(Frame {
            indent: Some(indent),
            start: (line_no, line.to_string()),
            ..Frame::default()
        });
    }

    /// A version or `# Subtest:` line: opens a block, or completes the
    /// headers of a block that has only headers so far.
    fn header(
        &mut self,
        line_no: usize,
        line: &str,
        indent: usize,
        content: &str,
        subtest: Option<&str>,
    ) {
        let at_top = self.stack.len() == 1 && self.stack[0].indent.is_none();
        let frame = self.enter(line_no, line, indent);
        let slot_free = match subtest {
            None => frame.version.is_none(),
            Some(_) => frame.subtest_name.is_none(),
        };
        if at_top || (frame.is_fresh() && slot_free) {
            match subtest {
                None => frame.version = Some(content.to_string()),
                Some(name) => frame.subtest_name = Some(name.to_string()),
            }
            return;
        }
        if self.stack.len() > 1 {
            // A sibling block starts: the current one ended without its
            // result line.
            self.pop();
            self.open(line_no, line, indent);
            return self.header(line_no, line, indent, content, subtest);
        }
        match subtest {
            None => self.error(
                line_no,
                line,
                "version line in the middle of the top level (output restarted?)",
            ),
            // A top-level `# Subtest:` comment names nothing: keep it as a diagnostic.
            Some(_) => self.top().pending.push((line_no, content.to_string())),
        }
    }

    fn result(&mut self, line_no: usize, line: &str, r: ResultLine) {
        let mut frame = self.stack.pop().expect("top level");
        let expected = frame.results.last().map_or(1, |t| t.number + 1);
        if r.number != expected {
            self.error(
                line_no,
                line,
                format!(
                    "test number {} out of sequence (expected {expected})",
                    r.number
                ),
            );
        }
        let (mut subtests, mut plan, mut name) = (Vec::new(), None, r.name);
        if let Some(c) = frame.closed.take() {
            match c.name {
                Some(header) if name.is_empty() => name = header,
                Some(header) if header != name => {
                    self.error(
                        line_no,
                        line,
                        format!("result name does not match its subtest header {header:?}"),
                    );
                }
                _ => {}
            }
            subtests = c.results;
            plan = c.plan;
        }
        let outcome = outcome(r.ok, r.directive.as_deref());
        if outcome == Outcome::Pass {
            if let Some(bad) = subtests.iter().find(|s| s.outcome.is_failure()) {
                let msg = format!(
                    "reported ok but subtest {} {:?} has outcome {}",
                    bad.number, bad.name, bad.outcome
                );
                self.error(line_no, line, msg);
            }
        }
        frame.results.push(TestResult {
            number: r.number,
            name,
            ok: r.ok,
            outcome,
            directive: r.directive,
            directive_reason: r.reason,
            diagnostics: frame.pending.drain(..).map(|(_, l)| l).collect(),
            subtests,
            plan,
            line_no,
        });
        self.stack.push(frame);
    }

    fn finish(mut self, lines: usize) -> Report {
        while self.stack.len() > 1 {
            self.pop();
        }
        let mut root = self.stack.pop().expect("top level");
        if root.closed.is_some() {
            self.flush_closed(&mut root, "has no result line (stream truncated)");
        }
        self.check_plan(&root);
        if root.version.is_none() {
            let message = if lines == 0 {
                "empty result stream"
            } else {
                "no KTAP version line"
            };
            self.errors.insert(
                0,
                ParseError {
                    line_no: 0,
                    line: String::new(),
                    message: message.into(),
                },
            );
        }
        self.errors.sort_by_key(|e| e.line_no);
        Report {
            version: root.version,
            plan: root.plan.map(|(n, _, _)| n),
            tests: root.results,
            diagnostics: root.pending.into_iter().map(|(_, l)| l).collect(),
            completion: self.completion,
            errors: self.errors,
        }
    }
}
