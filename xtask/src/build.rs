//! `cargo xtask build`: build kernels only.

use anyhow::Result;
use harness::kernel::prereqs;
use harness::testrun::{self, Cell};

use crate::flags::BuildArgs;
use crate::selection;

pub fn run(args: BuildArgs) -> Result<i32> {
    let cells = selection::cells(&args.kernel)?;
    prereqs::ensure(&prereqs::Needs {
        arches: selection::arches_of(&cells),
        debian_source: args.kernel.kernel_tree.is_none(),
        guest: false,
        llvm: selection::needs_llvm(&args.kernel),
    })?;
    let source = selection::prepare_source(&args.kernel)?;
    let mut last = None;
    for id in &cells {
        let cell = Cell::new(id, &source);
        let built = testrun::build_kernel(&cell, selection::jobs(&args.kernel))?;
        println!("{}", built.dir.display());
        last = Some(built);
    }
    drop(last);
    Ok(0)
}
