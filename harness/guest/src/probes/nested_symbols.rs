//! `nested-symbols`: a sized symbol nested inside another sized symbol
//! (assembly that ends an inner label with `.size`) does not cut the
//! enclosing symbol short: addresses of the enclosing symbol past the
//! inner one's end resolve to the enclosing symbol, with its size. The
//! fixture patch provides one such pair on every arch
//! (`kallsyms_fixture_nested_outer`/`_inner`); real kernels have more.

use std::io::Write;

use super::kernel::{self, hex, summarize_detail};
use crate::ktap::{CaseWriter, Verdict};

struct Point {
    addr: u64,
    outer_start: u64,
    outer_size: u64,
    outer: String,
    inner: String,
}

fn read() -> Result<Vec<Point>, String> {
    kernel::read_lines(ksh_proto::EXPECT_NESTED)?
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() != 5 {
                return Err(format!("{}: malformed: {l}", ksh_proto::EXPECT_NESTED));
            }
            Ok(Point {
                addr: hex(f[0])?,
                outer_start: hex(f[1])?,
                outer_size: hex(f[2])?,
                outer: f[3].into(),
                inner: f[4].into(),
            })
        })
        .collect()
}

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let (points, off) = match read().and_then(|p| Ok((p, kernel::kaslr_offset()?))) {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    if !points
        .iter()
        .any(|p| p.outer.starts_with(ksh_proto::FIXTURE_PREFIX))
    {
        return out.fail_rest(&format!(
            "0 checked: no nested {}* pair in {}: is the fixture patch applied?",
            ksh_proto::FIXTURE_PREFIX,
            ksh_proto::EXPECT_NESTED
        ));
    }
    let addrs: Vec<u64> = points.iter().map(|p| p.addr.wrapping_add(off)).collect();
    let answers = match kernel::lookup_no_ps(&addrs) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    let mut bad = Vec::new();
    for (p, a) in points.iter().zip(&answers) {
        let want_off = p.addr - p.outer_start;
        if !(a.found && a.name == p.outer && a.offset == want_off && a.size == p.outer_size) {
            bad.push(format!(
                "{:#x} (past {}, inside {}): want {}+{want_off:#x}/{:#x}, kernel {}",
                p.addr,
                p.inner,
                p.outer,
                p.outer,
                p.outer_size,
                a.describe()
            ));
        }
    }
    println!(
        "# {} addresses of enclosing symbols checked, {} wrong",
        points.len(),
        bad.len()
    );
    out.case(
        "enclosing",
        if bad.is_empty() {
            Verdict::Pass
        } else {
            let mut d = vec![format!(
                "{} of {} size-blind or cut short",
                bad.len(),
                points.len()
            )];
            d.extend(summarize_detail("enclosing-symbol addresses", &bad));
            Verdict::Fail(d)
        },
    );
}
