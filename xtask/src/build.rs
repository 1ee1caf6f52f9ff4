//! `cargo xtask build`: build kernels only.

use anyhow::Result;
use harness::prereqs;
use harness::testrun::{self, Cell};

use crate::flags::BuildArgs;
use crate::selection;

pub fn run(args: BuildArgs) -> Result<i32> {
    let arches = selection::arches(&args.kernel)?;
    let configs = selection::configs(&args.kernel)?;
    prereqs::ensure(&prereqs::Needs {
        arches: arches.clone(),
        debian_source: args.kernel.kernel_tree.is_none(),
        guest: false,
    })?;
    let source = selection::prepare_source(&args.kernel)?;
    let mut last = None;
    for arch in arches {
        for config in &configs {
            let cell = Cell {
                arch,
                config: config.clone(),
                source: &source,
            };
            let built = testrun::build_kernel(&cell, selection::jobs(&args.kernel))?;
            println!("{}", built.dir.display());
            last = Some(built);
        }
    }
    drop(last);
    Ok(0)
}
