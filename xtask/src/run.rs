//! `cargo xtask run`: a shell in the kernel of one cell (see
//! `harness::shell`).

use anyhow::{bail, Result};
use harness::kernel::prereqs;
use harness::shell::{self, ShellOptions};
use harness::testrun::Cell;

use crate::flags::RunArgs;
use crate::selection;

/// `run` boots the cell's kernel with the guest's programs.
const NEEDS: prereqs::Needs = prereqs::Needs {
    source: prereqs::SourceNeed::DebianUnlessTree,
    guest: true,
};

pub fn run(args: RunArgs) -> Result<i32> {
    let mut sel = args.kernel.clone();
    if sel.arches.is_empty() {
        sel.arches = vec!["x86_64".into()];
    }
    let cells = selection::cells(&sel)?;
    let [id] = cells.as_slice() else {
        bail!(
            "run boots one kernel, and --kernel/--arch/--config/--toolchain select {}: give one of each",
            cells.len()
        );
    };
    NEEDS.ensure(&selection::selected(&sel, vec![id.arch], id.kernel))?;
    let source = selection::prepare_source(&sel, id.kernel)?;
    let cell = Cell::new(id, &source);
    shell::run(
        &cell,
        &ShellOptions {
            accel: args.accel,
            jobs: selection::jobs(&sel),
            gdb_port: args.gdb.port(),
            guest_params: args.guest_param,
        },
    )
}
