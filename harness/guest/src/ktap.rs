//! The probe side of KTAP: one writer per probe process that numbers the
//! cases in the order the registry declares them.

use std::io::Write;

use ksh_proto::ProbeSpec;

/// How many offending items a failing case prints inline; the rest are
/// counted, and the full list is in the probe's own detail lines.
pub const MAX_INLINE: usize = 8;

/// Outcome of one case.
pub enum Verdict {
    Pass,
    /// Failed, with diagnostic lines.
    Fail(Vec<String>),
    /// Not applicable to this kernel (a config without the feature), with
    /// the reason. Only for cases `ksh_proto::APPLICABILITY` declares not
    /// applicable: use [`CaseWriter::skip_if_not_applicable`].
    Skip(String),
}

/// Writes the cases of one probe, enforcing the declared order.
pub struct CaseWriter<W: Write> {
    out: W,
    spec: &'static ProbeSpec,
    next: usize,
    /// The count line of the case being reported (set by `counted`).
    count: Option<String>,
    /// When the previous case was reported (or the writer made), for the
    /// per-case time lines; `None` leaves them out (unit tests).
    case_started: Option<std::time::Instant>,
}

impl<W: Write> CaseWriter<W> {
    pub fn new(out: W, spec: &'static ProbeSpec) -> Self {
        CaseWriter {
            out,
            spec,
            next: 0,
            count: None,
            case_started: None,
        }
    }

    /// Also writes `# case-time: CASE N ms` before each case's result: the
    /// time since the previous case, so a slow probe says which part of it
    /// is slow.
    pub fn with_case_times(mut self) -> Self {
        self.case_started = Some(std::time::Instant::now());
        self
    }

    /// Reports `case`, which must be the next declared case.
    pub fn case(&mut self, case: &str, verdict: Verdict) {
        let expected = self.spec.cases.get(self.next).copied().unwrap_or("<none>");
        assert_eq!(
            case, expected,
            "probe {} reports cases out of declared order",
            self.spec.name
        );
        self.next += 1;
        let n = self.next;
        // The count line goes last, right before the result line, so a
        // probe that dies before this point leaves no count behind.
        let mut count = self
            .count
            .take()
            .map(|c| format!("{c}\n"))
            .unwrap_or_default();
        if let Some(t) = self.case_started.as_mut() {
            count = format!(
                "# case-time: {case} {} ms\n{count}",
                t.elapsed().as_millis()
            );
            *t = std::time::Instant::now();
        }
        let line = match verdict {
            Verdict::Pass => format!("{count}ok {n} {case}\n"),
            Verdict::Skip(why) => format!("{count}ok {n} {case} # SKIP {why}\n"),
            Verdict::Fail(diag) => {
                let mut s = String::new();
                for d in diag {
                    for l in d.lines() {
                        s.push_str(&format!("# {l}\n"));
                    }
                }
                s.push_str(&count);
                s.push_str(&format!("not ok {n} {case}\n"));
                s
            }
        };
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    /// Reports a checking case: `checked` items were compared with the
    /// expectations and `mismatched` of them were wrong (`diag` says which,
    /// expected vs actual). Fails when nothing was checked (`0 checked:
    /// why_empty`: the expectation list or the kernel's answer was empty,
    /// which the fixture rules out) or when anything mismatched; passes
    /// otherwise. Always writes the count line of [`ksh_proto::CHECKED_PREFIX`]
    /// right before the result, which the host requires of every counted
    /// case.
    pub fn counted(
        &mut self,
        case: &str,
        checked: usize,
        mismatched: usize,
        diag: Vec<String>,
        why_empty: &str,
    ) {
        let verdict = if checked == 0 {
            let mut d = vec![format!("0 checked: {why_empty}")];
            d.extend(diag);
            Verdict::Fail(d)
        } else if mismatched > 0 {
            let mut d = vec![format!("{mismatched} of {checked} mismatched")];
            d.extend(diag);
            Verdict::Fail(d)
        } else {
            Verdict::Pass
        };
        self.count = Some(ksh_proto::checked_line(
            self.spec.name,
            case,
            mismatched as u64,
            checked as u64,
        ));
        self.case(case, verdict);
    }

    /// [`Self::counted`] for the common shape: `bad` holds one line per
    /// mismatched item, summarized (first few inline, then `detail:`
    /// lines) under `what`.
    pub fn checked_items(
        &mut self,
        case: &str,
        checked: usize,
        what: &str,
        bad: &[String],
        why_empty: &str,
    ) {
        let diag = if bad.is_empty() {
            Vec::new()
        } else {
            summarize_detail(what, bad)
        };
        self.counted(case, checked, bad.len(), diag, why_empty);
    }

    /// Reports `case` as SKIP if the registry declares it not applicable to
    /// this build (`ksh_proto::APPLICABILITY`); returns whether it did. A
    /// SKIP for any other reason fails on the host.
    pub fn skip_if_not_applicable(&mut self, case: &str) -> bool {
        match crate::expect::not_applicable(self.spec.name, case) {
            Some(why) => {
                self.case(case, Verdict::Skip(why.to_string()));
                true
            }
            None => false,
        }
    }

    /// Writes a diagnostic line (`# text`) before the next case: figures a
    /// passing case reports, such as the lookup benchmark's.
    pub fn note(&mut self, text: &str) {
        let _ = self.out.write_all(format!("# {text}\n").as_bytes());
    }

    /// Reports every remaining case as failed for `why` (a probe that cannot
    /// get started at all).
    pub fn fail_rest(&mut self, why: &str) {
        while let Some(case) = self.spec.cases.get(self.next).copied() {
            self.case(case, Verdict::Fail(vec![why.to_string()]));
        }
    }

    /// The value of a setup step, or None after reporting every remaining
    /// case as failed for its error ([`CaseWriter::fail_rest`]).
    pub fn setup<T>(&mut self, step: Result<T, String>) -> Option<T> {
        step.map_err(|e| self.fail_rest(&e)).ok()
    }

    pub fn finish(mut self) {
        let _ = self.out.flush();
    }
}

/// A case result line as the parent reads it back.
pub struct CaseLine {
    pub number: usize,
    pub ok: bool,
}

/// Parses `ok N name...` / `not ok N name...`.
pub fn parse_case_line(line: &str) -> Option<CaseLine> {
    let (ok, rest) = if let Some(r) = line.strip_prefix("ok ") {
        (true, r)
    } else if let Some(r) = line.strip_prefix("not ok ") {
        (false, r)
    } else {
        return None;
    };
    let number = rest.split_whitespace().next()?.parse().ok()?;
    Some(CaseLine { number, ok })
}

/// Formats a failure summary: the first few items inline, and a count.
pub fn summarize<T: std::fmt::Display>(what: &str, items: &[T]) -> Vec<String> {
    let mut out = vec![format!("{} {what}", items.len())];
    for i in items.iter().take(MAX_INLINE) {
        out.push(format!("  {i}"));
    }
    if items.len() > MAX_INLINE {
        out.push(format!("  ... and {} more", items.len() - MAX_INLINE));
    }
    out
}

/// How many offending items a case prints as `detail:` lines (beyond the
/// inline summary); the rest are counted.
pub const DETAIL_CAP: usize = 200;

/// A failure summary plus the full list as `detail:` lines, up to a cap.
pub fn summarize_detail<T: std::fmt::Display>(what: &str, items: &[T]) -> Vec<String> {
    let mut out = summarize(what, items);
    if items.len() > MAX_INLINE {
        for i in items.iter().skip(MAX_INLINE).take(DETAIL_CAP) {
            out.push(format!("detail: {i}"));
        }
        let shown = MAX_INLINE + DETAIL_CAP;
        if items.len() > shown {
            out.push(format!(
                "detail: {} more not printed ({} in all)",
                items.len() - shown,
                items.len()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut CaseWriter<&mut Vec<u8>>)) -> String {
        let spec = ksh_proto::probe("sizes").unwrap();
        let mut buf = Vec::new();
        let mut w = CaseWriter::new(&mut buf, spec);
        f(&mut w);
        drop(w);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn counted_fails_on_zero_checked_and_mismatches_and_always_counts() {
        let out = written(|w| {
            w.counted("start-name-offset", 0, 0, Vec::new(), "empty list");
            w.checked_items(
                "start-size",
                10,
                "wrong sizes",
                &["a: want 0x10, kernel 0x20".to_string()],
                "empty list",
            );
            w.checked_items("last-byte", 10, "x", &[], "empty list");
        });
        assert_eq!(
            out,
            "# 0 checked: empty list\n\
             # ksh-checked: sizes/start-name-offset 0 of 0 mismatched\n\
             not ok 1 start-name-offset\n\
             # 1 of 10 mismatched\n\
             # 1 wrong sizes\n\
             #   a: want 0x10, kernel 0x20\n\
             # ksh-checked: sizes/start-size 1 of 10 mismatched\n\
             not ok 2 start-size\n\
             # ksh-checked: sizes/last-byte 0 of 10 mismatched\n\
             ok 3 last-byte\n"
        );
    }

    #[test]
    fn case_times_come_before_the_count_line() {
        let spec = ksh_proto::probe("sizes").unwrap();
        let mut buf = Vec::new();
        let mut w = CaseWriter::new(&mut buf, spec).with_case_times();
        w.checked_items("start-name-offset", 3, "x", &[], "empty list");
        drop(w);
        let out = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with("# case-time: start-name-offset ") && lines[0].ends_with(" ms"),
            "{out}"
        );
        assert_eq!(
            lines[1],
            "# ksh-checked: sizes/start-name-offset 0 of 3 mismatched"
        );
        assert_eq!(lines[2], "ok 1 start-name-offset");
    }
}
