//! `cargo xtask matrix`: the CI matrix (arch × config × toolchain × kernel
//! source) as
//! JSON a CI system's matrix strategy consumes directly
//! (GitHub Actions: `strategy.matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}`).

use anyhow::Result;
use harness::cell::SourceKind;
use serde_json::json;

use crate::flags::MatrixArgs;
use crate::selection;

/// The only kernel source the matrix knows by name; user trees are
/// passed with --kernel-tree by the cell itself.
const KERNEL_SOURCES: &[&str] = &["debian-6.12"];

pub fn run(args: MatrixArgs) -> Result<i32> {
    let arches = selection::arches(&args.kernel)?;
    let configs = if args.all_configs {
        selection::configs_with(&args.kernel, &harness::kernel::kconfig::variant_names()?)?
    } else {
        selection::configs(&args.kernel)?
    };
    let mut include = Vec::new();
    for kernel in KERNEL_SOURCES {
        for cell in selection::cells_of(&arches, &configs, SourceKind::Patched, false)? {
            let junit = format!("junit-{}-{kernel}.xml", cell.dir_name());
            let (arch, variant, toolchain) = (cell.arch, &cell.variant, cell.toolchain);
            include.push(json!({
                "arch": arch.name,
                "config": variant,
                "toolchain": toolchain.name(),
                "kernel": kernel,
                "junit": junit,
                "command": format!(
                    "cargo xtask test --arch {} --config {variant} --toolchain {toolchain} --junit {junit}",
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
