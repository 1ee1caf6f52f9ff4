//! `weak-orphans`: the leftover body of an overridden `__weak` function has
//! no symbol; lookups of its first, middle and last byte must find none
//! (not the preceding function), and `%pS` must print the bare address.

use std::io::Write;

use super::kernel::{self, hex, summarize_detail};
use crate::ktap::{CaseWriter, Verdict};

struct Orphan {
    start: u64,
    end: u64,
    name: String,
    preceding: String,
}

fn read() -> Result<Vec<Orphan>, String> {
    kernel::read_lines(ksh_proto::EXPECT_ORPHANS)?
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() < 4 {
                return Err(format!("{}: malformed: {l}", ksh_proto::EXPECT_ORPHANS));
            }
            Ok(Orphan {
                start: hex(f[0])?,
                end: hex(f[1])?,
                name: f[2].into(),
                preceding: f[3].into(),
            })
        })
        .collect()
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let (orphans, off) = match read().and_then(|o| Ok((o, kernel::kaslr_offset()?))) {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    let mut addrs = Vec::new();
    let mut owner = Vec::new();
    for (i, o) in orphans.iter().enumerate() {
        let mut pts = vec![o.start, o.start + (o.end - o.start) / 2, o.end - 1];
        pts.dedup();
        for p in pts {
            addrs.push(p.wrapping_add(off));
            owner.push(i);
        }
    }
    let answers = if addrs.is_empty() {
        Vec::new()
    } else {
        match kernel::lookup(&addrs) {
            Ok(a) => a,
            Err(e) => return out.fail_rest(&e),
        }
    };
    let fixture = |o: &Orphan| o.name.starts_with(ksh_proto::FIXTURE_PREFIX);
    println!(
        "# {} orphaned weak bodies ({} fixture), {} addresses",
        orphans.len(),
        orphans.iter().filter(|o| fixture(o)).count(),
        addrs.len()
    );
    let check = |only_fixture: bool| -> (usize, Vec<String>) {
        let mut n = 0;
        let mut bad = Vec::new();
        for ((a, &i), ans) in addrs.iter().zip(&owner).zip(&answers) {
            let o = &orphans[i];
            if only_fixture && !fixture(o) {
                continue;
            }
            n += 1;
            let bare = format!("0x{a:x}");
            if ans.found || ans.ps != bare {
                bad.push(format!(
                    "{} [{:#x},{:#x}) at +{:#x} (size-blind: {}): {}",
                    o.name,
                    o.start,
                    o.end,
                    a.wrapping_sub(off) - o.start,
                    o.preceding,
                    ans.describe()
                ));
            }
        }
        (n, bad)
    };
    let verdict = |(n, bad): (usize, Vec<String>)| {
        if bad.is_empty() {
            Verdict::Pass
        } else {
            let mut d = vec![format!(
                "{} of {n} addresses resolve to a symbol",
                bad.len()
            )];
            d.extend(summarize_detail(
                "addresses inside orphaned weak bodies with a symbol",
                &bad,
            ));
            Verdict::Fail(d)
        }
    };
    if orphans.iter().any(fixture) {
        out.case("fixture", verdict(check(true)));
    } else {
        out.case(
            "fixture",
            Verdict::Fail(vec![format!(
                "no orphaned {}* body in this build: is the fixture patch applied?",
                ksh_proto::FIXTURE_PREFIX
            )]),
        );
    }
    if orphans.is_empty() {
        out.case(
            "all",
            Verdict::Skip("the host found no orphaned weak bodies in this build".into()),
        );
    } else {
        out.case("all", verdict(check(false)));
    }
}
