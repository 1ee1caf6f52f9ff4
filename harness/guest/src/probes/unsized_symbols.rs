//! `unsized-symbols`: a symbol without a size (assembly without `.size`,
//! linker-script symbols) keeps the rule it always had: it extends up to
//! the next symbol. Lookups of the first and last byte of every such
//! symbol (alone at its address) give its name, the offset and that
//! extent.

use std::io::Write;

use ksh_proto::check::{Expect, Record};

use crate::ktap::CaseWriter;
use ksh_proto::files::{self, UnsizedLine};

use crate::{expect, kaslr, probe_module};

pub fn run<W: Write>(out: &mut CaseWriter<W>) {
    let setup = || -> Result<_, String> {
        let text = expect::expect_text(ksh_proto::files::FileId::Unsized.path())?;
        let pts: Vec<(u64, u64, u64, String)> = files::decode::<UnsizedLine>(&text)?
            .into_iter()
            .map(|u| (u.addr, u.start, u.size, u.name.to_string()))
            .collect();
        Ok((pts, kaslr::kaslr_offset()?))
    };
    let (pts, off) = match setup() {
        Ok(x) => x,
        Err(e) => return out.fail_rest(&e),
    };
    if pts.is_empty() {
        return out.fail_rest(&format!(
            "0 checked: {} lists no unsized symbol (every kernel has some, e.g. _stext)",
            ksh_proto::files::FileId::Unsized.path()
        ));
    }
    let records: Vec<Record> = pts
        .iter()
        .enumerate()
        .map(|(i, (a, start, size, name))| Record {
            id: i as u32,
            addr: a.wrapping_add(off),
            expect: Expect::Symbol {
                names: vec![name.as_str()],
                offset: Some(a - start),
                size: Some(*size),
            },
        })
        .collect();
    let answers = match probe_module::check(&records) {
        Ok(a) => a,
        Err(e) => return out.fail_rest(&e),
    };
    let mut bad = Vec::new();
    for (i, (a, start, size, name)) in pts.iter().enumerate() {
        // Absent: the kernel answered exactly name+offset/size.
        let Some(k) = answers.get(i) else { continue };
        let want_off = a - start;
        if !(k.found && &k.name == name && k.offset == want_off && k.size == *size) {
            bad.push(format!(
                "{a:#x}: want {name}+{want_off:#x}/{size:#x}, kernel {}",
                k.describe()
            ));
        }
    }
    out.checked_items(
        "up-to-next",
        pts.len(),
        "unsized-symbol addresses",
        &bad,
        "no unsized symbol in the expectations",
    );
}
