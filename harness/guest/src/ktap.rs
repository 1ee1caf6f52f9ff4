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
    /// Not applicable to this kernel (a config without the feature), with the reason.
    #[allow(dead_code)]
    Skip(String),
}

/// Writes the cases of one probe, enforcing the declared order.
pub struct CaseWriter<W: Write> {
    out: W,
    spec: &'static ProbeSpec,
    next: usize,
}

impl<W: Write> CaseWriter<W> {
    pub fn new(out: W, spec: &'static ProbeSpec) -> Self {
        CaseWriter { out, spec, next: 0 }
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
        let line = match verdict {
            Verdict::Pass => format!("ok {n} {case}\n"),
            Verdict::Skip(why) => format!("ok {n} {case} # SKIP {why}\n"),
            Verdict::Fail(diag) => {
                let mut s = String::new();
                for d in diag {
                    for l in d.lines() {
                        s.push_str(&format!("# {l}\n"));
                    }
                }
                s.push_str(&format!("not ok {n} {case}\n"));
                s
            }
        };
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
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

    /// Reports every remaining case as not applicable to this kernel.
    pub fn skip_rest(&mut self, why: &str) {
        while let Some(case) = self.spec.cases.get(self.next).copied() {
            self.case(case, Verdict::Skip(why.to_string()));
        }
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
