//! Turning `--arch/--config/--baseline/--kernel-tree` into cells to run.

use anyhow::{bail, Result};
use harness::kernel::prereqs;
use harness::kernel::series::Variant;
use harness::kernel::source::{self, KernelSource, SourceSpec};
use harness::kernel::toolchain::Toolchain;
use harness::vm::arch::{self, ArchProfile};

use crate::flags::KernelSelection;

/// The selected architectures, validated.
pub fn arches(sel: &KernelSelection) -> Result<Vec<&'static ArchProfile>> {
    if sel.arches.is_empty() {
        return Ok(arch::ALL.to_vec());
    }
    sel.arches.iter().map(|a| arch::by_name(a)).collect()
}

/// The selected config labels, validated: each variant of `--config`
/// with each toolchain of `--toolchain` (`minimal`, `minimal-llvm`; see
/// [`Toolchain`]).
pub fn configs(sel: &KernelSelection) -> Result<Vec<String>> {
    configs_with(sel, &sel.configs)
}

/// [`configs`] for the variants `variants` instead of `--config`'s.
pub fn configs_with(sel: &KernelSelection, variants: &[String]) -> Result<Vec<String>> {
    let valid = harness::kernel::kconfig::variant_names()?;
    let mut out = Vec::new();
    for c in variants {
        if !valid.contains(c) {
            // A label names its toolchain itself (`minimal-llvm`, as test
            // names and reproduction commands print it).
            let (variant, toolchain) = Toolchain::of_label(c);
            if toolchain != Toolchain::Gcc && valid.iter().any(|v| v == variant) {
                out.push(c.clone());
                continue;
            }
            bail!("unknown config '{c}'; valid: {}", valid.join(", "));
        }
        for t in toolchains(sel) {
            out.push(t.label(c));
        }
    }
    Ok(out)
}

/// The selected toolchains (default: gcc), each once.
pub fn toolchains(sel: &KernelSelection) -> Vec<Toolchain> {
    let mut t = sel.toolchains.clone();
    if t.is_empty() {
        t.push(Toolchain::Gcc);
    }
    t.sort();
    t.dedup();
    t
}

/// Whether any selected kernel is built with LLVM (its tools are then
/// prerequisites).
pub fn needs_llvm(sel: &KernelSelection) -> bool {
    configs(sel).is_ok_and(|labels| {
        labels
            .iter()
            .any(|l| Toolchain::of_label(l).1 == Toolchain::Llvm)
    })
}

/// The (arch, config) cells selected. A config that applies to some arches
/// only (`# arches:` in its fragment) is left out for the others when no
/// `--arch` was given, and is an error for an arch asked for by name.
pub fn cells(sel: &KernelSelection) -> Result<Vec<(&'static ArchProfile, String)>> {
    let (arches, configs) = (arches(sel)?, configs(sel)?);
    cells_of(&arches, &configs, !sel.arches.is_empty())
}

/// [`cells`] for explicit lists; `strict`: an inapplicable pair is an error.
pub fn cells_of(
    arches: &[&'static ArchProfile],
    configs: &[String],
    strict: bool,
) -> Result<Vec<(&'static ArchProfile, String)>> {
    let mut out = Vec::new();
    for &arch in arches {
        for config in configs {
            if harness::kernel::kconfig::variant_applies(config, arch)? {
                out.push((arch, config.clone()));
            } else if strict {
                // Names the arches the config is for.
                harness::kernel::kconfig::fragments(arch, config)?;
            }
        }
    }
    if out.is_empty() {
        bail!("no (arch, config) pair selected applies: check --arch and --config");
    }
    Ok(out)
}

/// [`cells`], with the prerequisites of their kernels ensured for a
/// subcommand that needs `needs`.
pub fn cells_ready(
    sel: &KernelSelection,
    needs: &prereqs::Needs,
) -> Result<Vec<(&'static ArchProfile, String)>> {
    let cells = cells(sel)?;
    needs.ensure(&selected(sel, arches_of(&cells)))?;
    Ok(cells)
}

/// The distinct arches of `cells`, in order (for the prerequisites).
pub fn arches_of(cells: &[(&'static ArchProfile, String)]) -> Vec<&'static ArchProfile> {
    let mut arches: Vec<_> = cells.iter().map(|c| c.0).collect();
    arches.dedup_by_key(|a| a.name);
    arches
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

/// What the kernels of `sel` on `arches` add to a subcommand's
/// prerequisites (`prereqs::Needs::ensure`).
pub fn selected<'a>(sel: &KernelSelection, arches: Vec<&'a ArchProfile>) -> prereqs::Selected<'a> {
    prereqs::Selected {
        arches,
        user_tree: sel.kernel_tree.is_some(),
        llvm: needs_llvm(sel),
    }
}

pub fn jobs(sel: &KernelSelection) -> usize {
    sel.jobs.unwrap_or_else(harness::proc::default_jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(configs: &[&str], toolchains: &[Toolchain]) -> KernelSelection {
        KernelSelection {
            arches: Vec::new(),
            configs: configs.iter().map(|c| c.to_string()).collect(),
            toolchains: toolchains.to_vec(),
            baseline: false,
            kernel_tree: None,
            jobs: None,
        }
    }

    #[test]
    fn config_labels_cross_variants_with_toolchains() {
        let s = sel(&["minimal", "kaslr"], &[Toolchain::Llvm, Toolchain::Gcc]);
        assert_eq!(
            configs(&s).unwrap(),
            ["minimal", "minimal-llvm", "kaslr", "kaslr-llvm"]
        );
        assert!(needs_llvm(&s));
        let s = sel(&["minimal"], &[]);
        assert_eq!(configs(&s).unwrap(), ["minimal"]);
        assert!(!needs_llvm(&s));
        // A label as test names print it is accepted as it is.
        let s = sel(&["minimal-llvm"], &[]);
        assert_eq!(configs(&s).unwrap(), ["minimal-llvm"]);
        assert!(needs_llvm(&s));
        assert!(configs(&sel(&["nope-llvm"], &[])).is_err());
    }
}
