//! Turning `--arch/--config/--baseline/--kernel-tree` into cells to run.

use anyhow::{bail, Result};
use harness::arch::{self, ArchProfile};
use harness::series::Variant;
use harness::source::{self, KernelSource, SourceSpec};

use crate::flags::KernelSelection;

/// The selected architectures, validated.
pub fn arches(sel: &KernelSelection) -> Result<Vec<&'static ArchProfile>> {
    if sel.arches.is_empty() {
        return Ok(arch::ALL.to_vec());
    }
    sel.arches.iter().map(|a| arch::by_name(a)).collect()
}

/// The selected config variants, validated.
pub fn configs(sel: &KernelSelection) -> Result<Vec<String>> {
    let valid = harness::kconfig::variant_names()?;
    for c in &sel.configs {
        if !valid.contains(c) {
            bail!("unknown config '{c}'; valid: {}", valid.join(", "));
        }
    }
    Ok(sel.configs.clone())
}

pub fn source_spec(sel: &KernelSelection) -> Result<SourceSpec> {
    Ok(match (&sel.kernel_tree, sel.baseline) {
        (Some(_), true) => bail!(
            "--baseline selects the unpatched Debian source; with --kernel-tree, check out the baseline commit instead"
        ),
        (Some(tree), false) => SourceSpec::Tree(tree.clone()),
        (None, baseline) => SourceSpec::Debian { variant: if baseline { Variant::Baseline } else { Variant::Patched } },
    })
}

pub fn prepare_source(sel: &KernelSelection) -> Result<KernelSource> {
    source::prepare(&source_spec(sel)?)
}

pub fn jobs(sel: &KernelSelection) -> usize {
    sel.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() + 1)
            .unwrap_or(3)
    })
}
