//! `cargo xtask matrix`: the CI matrix (kernel × arch × config × toolchain)
//! as JSON a CI system's matrix strategy consumes directly (GitHub
//! Actions: `strategy.matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}`).
//! Every kernel line by default (`--kernel` narrows it). User trees are
//! not in the matrix: a cell of one passes --kernel-tree itself.

use anyhow::Result;
use harness::cell::kernel::at_least;
use harness::cell::{SourceKind, Toolchain};
use serde_json::json;

use crate::flags::MatrixArgs;
use crate::selection;

/// The clang of the image the sample workflow's jobs run in
/// (`container: debian:bookworm` in `.github/workflows/kallsyms.yml`;
/// `xtask/tests/ci_files.rs` checks the two agree). An LLVM cell of a line
/// whose minimum clang is newer would only be refused there, so the
/// matrix leaves it out and says so on stderr.
pub const WORKFLOW_IMAGE: &str = "debian:bookworm";
pub const WORKFLOW_CLANG: &str = "14.0.6";

pub fn run(args: MatrixArgs) -> Result<i32> {
    let mut sel = args.kernel.clone();
    if sel.kernel_versions.is_empty() {
        sel.kernel_versions = vec!["all".into()];
    }
    let arches = selection::arches(&sel)?;
    let configs = if args.all_configs {
        selection::configs_with(&sel, &harness::kernel::kconfig::variant_names()?)?
    } else {
        selection::configs(&sel)?
    };
    let mut include = Vec::new();
    for kernel in selection::kernels(&sel)? {
        for cell in selection::cells_of(&arches, &configs, SourceKind::Patched, false)? {
            let cell = cell.of_kernel(kernel);
            if cell.toolchain == Toolchain::Llvm
                && !at_least(WORKFLOW_CLANG, kernel.line().min_tools.llvm)
            {
                eprintln!(
                    "ksh: matrix: leaving out {}: Linux {kernel} needs clang >= {}, the workflow's {WORKFLOW_IMAGE} has {WORKFLOW_CLANG}",
                    cell.name(),
                    kernel.line().min_tools.llvm
                );
                continue;
            }
            let junit = format!("junit-{kernel}-{}.xml", cell.dir_name());
            let (arch, variant, toolchain) = (cell.arch, &cell.variant, cell.toolchain);
            include.push(json!({
                "kernel": kernel.version(),
                "arch": arch.name,
                "config": variant,
                "toolchain": toolchain.name(),
                "junit": junit,
                "command": format!(
                    "cargo xtask test --kernel {kernel} --arch {} --config {variant} --toolchain {toolchain} --junit {junit}",
                    arch.name
                ),
            }));
        }
    }
    let matrix = json!({ "include": include });
    if args.pretty {
        println!("{}", serde_json::to_string_pretty(&matrix)?);
    } else {
        println!("{matrix}");
    }
    Ok(0)
}
