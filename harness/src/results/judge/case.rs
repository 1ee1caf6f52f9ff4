//! The verdict of one probe case from its KTAP result: outside the
//! baseline proof ([`judge_case`]) and inside it ([`judge_baseline_case`]).

use crate::cell::Status;
use crate::results::ktap;

/// What one case reported checking (its `ksh_proto::CHECKED_PREFIX` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseCount {
    pub probe: &'static str,
    pub case: &'static str,
    pub mismatched: u64,
    pub checked: u64,
}

/// The count line among a result's diagnostics, for `probe/case`.
pub(super) fn count_of(
    r: &ktap::TestResult,
    probe: &'static str,
    case: &'static str,
) -> Option<CaseCount> {
    r.diagnostics
        .iter()
        .filter_map(|l| ksh_proto::parse_checked_line(l))
        .find(|c| c.probe == probe && c.case == case)
        .map(|c| CaseCount {
            probe,
            case,
            mismatched: c.mismatched,
            checked: c.checked,
        })
}

/// The figure line of a measuring case (every key of
/// `ksh_proto::MEASUREMENT_KEYS` followed by a number), without its `# `.
fn measurement(r: &ktap::TestResult) -> Option<String> {
    r.diagnostics.iter().find_map(|l| {
        let l = l.trim().trim_start_matches('#').trim();
        ksh_proto::MEASUREMENT_KEYS
            .iter()
            .all(|k| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .is_some_and(|v| v.parse::<f64>().is_ok())
            })
            .then(|| l.to_string())
    })
}

/// One reported case, outside the baseline proof: a pass must have checked
/// something (its count line says M > 0 and no mismatch), a measuring case
/// must carry its figure (and is reported as measured), XFAIL fails, a
/// SKIP is only allowed where the registry declares the case not
/// applicable (and, by `declared_skip_only`, only in the cells it names).
pub(super) fn judge_case(
    probe: &str,
    case: &str,
    r: &ktap::TestResult,
    count: Option<&CaseCount>,
    not_applicable: Option<&str>,
) -> Status {
    let counted = ksh_proto::is_counted(probe, case);
    match r.outcome {
        ktap::Outcome::Pass if !counted => match measurement(r) {
            Some(figure) => Status::Measured(figure),
            None => Status::fail(format!(
                "reported ok without its figure line (# {} ...): nothing was measured",
                ksh_proto::MEASUREMENT_KEYS
                    .iter()
                    .map(|k| format!("{k}N"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        },
        // An expected failure is a failure: the probes have no known bugs
        // to carry, and a kernel bug marked XFAIL would pass unseen.
        ktap::Outcome::Xfail => Status::fail(format!(
            "reported XFAIL ({}): an expected failure is still a failure here",
            r.directive_reason.clone().unwrap_or_default()
        )),
        ktap::Outcome::Pass => match count {
            None => Status::fail(format!(
                "reported ok without a count line ({} {probe}/{case} N of M mismatched): nothing shows it checked anything",
                ksh_proto::CHECKED_PREFIX
            )),
            Some(c) if c.checked == 0 => {
                Status::fail("reported ok after checking 0 items: a vacuous pass".into())
            }
            Some(c) if c.mismatched > 0 => Status::fail(format!(
                "reported ok, but its count says {} of {} mismatched",
                c.mismatched, c.checked
            )),
            Some(_) => Status::Pass,
        },
        ktap::Outcome::Skip => {
            let why = r.directive_reason.clone().unwrap_or_default();
            match not_applicable {
                Some(_) => Status::Skip(why),
                None => Status::fail(format!(
                    "skipped ({why}), but the registry (ksh_proto::APPLICABILITY) declares this case applicable to this build: a skip here checks nothing"
                )),
            }
        }
        ktap::Outcome::Fail | ktap::Outcome::Timeout | ktap::Outcome::Todo => {
            let mut msg = r.diagnostics.join("\n");
            if r.outcome == ktap::Outcome::Timeout {
                msg.push_str(&format!(
                    "\nTIMEOUT: {}",
                    r.directive_reason.clone().unwrap_or_default()
                ));
            }
            Status::fail(msg)
        }
    }
}

/// A case that must fail on the baseline kernel. Its failure is the pass
/// only when the probe ran to the end and reported a mismatch: the VM
/// completed, the result is a plain `not ok` (no timeout), its count line
/// says N > 0 of M > 0, and it carries diagnostics beyond the count. A
/// crash, timeout, setup error, missing expectations, a SKIP or a pass all
/// fail the proof, with the reason.
pub(super) fn judge_baseline_case(
    status: Status,
    result: Option<&ktap::TestResult>,
    count: Option<&CaseCount>,
    vm_ok: bool,
) -> Status {
    let why = |reason: &str, detail: &str| {
        Status::fail(format!(
            "baseline proof: {reason}; a listed case must run to the end and report size-blind answers\n{}",
            detail.trim()
        ))
    };
    let detail = match &status {
        Status::Fail { detail: m, .. }
        | Status::Skip(m)
        | Status::NotRun(m)
        | Status::Measured(m) => m.clone(),
        Status::Pass => String::new(),
    };
    let Some(r) = result else {
        return why("the case reported no result", &detail);
    };
    if !vm_ok {
        return why("the VM did not complete", &detail);
    }
    match r.outcome {
        ktap::Outcome::Pass => {
            return Status::fail(
                "passed on the baseline (unpatched) kernel, where it must fail: the probe no longer detects size-blind lookups".into(),
            )
        }
        ktap::Outcome::Xfail => return why("it is marked XFAIL", &detail),
        ktap::Outcome::Skip => return why("it was skipped", &detail),
        ktap::Outcome::Timeout => return why("it timed out", &detail),
        ktap::Outcome::Todo => return why("it is marked TODO", &detail),
        ktap::Outcome::Fail => {}
    }
    let Some(c) = count else {
        return why(
            "it failed without a count line (the probe crashed, could not set up, or lost its expectations)",
            &detail,
        );
    };
    if c.checked == 0 {
        return why("it checked 0 items", &detail);
    }
    if c.mismatched == 0 {
        return why(
            &format!(
                "it failed, but its count says 0 of {} mismatched",
                c.checked
            ),
            &detail,
        );
    }
    // `CaseWriter::counted` writes `# N of M mismatched`, then what
    // mismatched (expected vs actual), then the count line.
    let summary = format!("# {} of {} mismatched", c.mismatched, c.checked);
    let has_diagnostics = r
        .diagnostics
        .iter()
        .skip_while(|l| l.trim() != summary)
        .skip(1)
        // The guest's timing line follows every case: it is no diagnostic.
        .any(|l| ksh_proto::parse_checked_line(l).is_none() && !l.starts_with("# case-time:"));
    if !has_diagnostics {
        return why("it printed no expected-vs-actual diagnostics", &detail);
    }
    Status::Pass
}
