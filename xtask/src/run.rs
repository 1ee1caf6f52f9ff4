//! `cargo xtask run`: a shell in the kernel of one cell (see
//! `harness::explore`).

use anyhow::Result;
use harness::explore::{self, ExploreOptions};
use harness::kernel::prereqs;
use harness::testrun::Cell;

use crate::flags::{KernelSelection, RunArgs};
use crate::selection;

pub fn run(args: RunArgs) -> Result<i32> {
    let sel = KernelSelection {
        arches: vec![args.arch.clone()],
        configs: vec![args.config.clone()],
        baseline: args.baseline,
        kernel_tree: args.kernel_tree.clone(),
        jobs: args.jobs,
    };
    let cells = selection::cells(&sel)?;
    prereqs::ensure(&prereqs::Needs {
        arches: selection::arches_of(&cells),
        debian_source: sel.kernel_tree.is_none(),
        guest: true,
    })?;
    let source = selection::prepare_source(&sel)?;
    let (arch, config) = cells.into_iter().next().expect("one arch and one config");
    let cell = Cell {
        arch,
        config,
        source: &source,
    };
    explore::run(
        &cell,
        &ExploreOptions {
            accel: args.accel,
            jobs: selection::jobs(&sel),
            gdb_port: args.gdb.then_some(args.gdb_port),
            guest_params: args.guest_param,
        },
    )
}
