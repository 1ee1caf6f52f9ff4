//! `cargo xtask build`: build kernels only.

use anyhow::Result;
use harness::kernel::prereqs;
use harness::testrun::{self, Cell};

use crate::flags::BuildArgs;
use crate::selection;

/// A build needs no guest programs.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::DebianUnlessTree,
    guest: false,
};

pub fn run(args: BuildArgs) -> Result<i32> {
    let cells = selection::cells_ready(&args.kernel, &NEEDS)?;
    for kernel in selection::kernels(&args.kernel)? {
        let source = selection::prepare_source(&args.kernel, kernel)?;
        let mut last = None;
        for id in cells.iter().filter(|c| c.kernel == kernel) {
            let cell = Cell::new(id, &source);
            let built = testrun::build_kernel(&cell, selection::jobs(&args.kernel))?;
            println!("{}", built.dir.display());
            last = Some(built);
        }
        drop(last);
    }
    Ok(0)
}
