//! Turning `--arch/--config/--baseline/--kernel-tree` into cells to run.

use anyhow::{anyhow, bail, Result};
use harness::cell::arch::{self, ArchProfile};
use harness::cell::{CellId, Kernel, SourceKind, Toolchain};
use harness::kernel::prereqs;
use harness::kernel::series::Variant;
use harness::kernel::source::{self, KernelSource, SourceSpec};

use crate::flags::KernelSelection;

/// The selected architectures, validated.
pub fn arches(sel: &KernelSelection) -> Result<Vec<&'static ArchProfile>> {
    if sel.arches.is_empty() {
        return Ok(arch::ALL.to_vec());
    }
    sel.arches.iter().map(|a| arch::by_name(a)).collect()
}

/// A config variant and the toolchain it is built with (a cell's config,
/// named by its label, `CellId::label`).
pub type Config = (String, Toolchain);

/// The selected configs, validated: each variant of `--config` with each
/// toolchain of `--toolchain`.
pub fn configs(sel: &KernelSelection) -> Result<Vec<Config>> {
    configs_with(sel, &sel.configs)
}

/// [`configs`] for the variants `variants` instead of `--config`'s.
pub fn configs_with(sel: &KernelSelection, variants: &[String]) -> Result<Vec<Config>> {
    let valid = harness::kernel::kconfig::variant_names()?;
    let mut out = Vec::new();
    for c in variants {
        if !valid.contains(c) {
            // A label names its toolchain itself (`minimal-llvm`, as test
            // names and reproduction commands print it).
            let (variant, toolchain) = CellId::split_label(c);
            if toolchain != Toolchain::Gcc && valid.iter().any(|v| v == variant) {
                out.push((variant.to_string(), toolchain));
                continue;
            }
            bail!("unknown config '{c}'; valid: {}", valid.join(", "));
        }
        for t in toolchains(sel) {
            out.push((c.clone(), t));
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
    configs(sel).is_ok_and(|c| c.iter().any(|(_, t)| *t == Toolchain::Llvm))
}

/// The kind of source `--baseline`/`--kernel-tree` select.
pub fn source_kind(sel: &KernelSelection) -> SourceKind {
    match (&sel.kernel_tree, sel.baseline) {
        (Some(_), _) => SourceKind::UserTree,
        (None, true) => SourceKind::Baseline,
        (None, false) => SourceKind::Patched,
    }
}

/// The selected cells, kernel line by kernel line. A config that applies
/// to some arches only (`# arches:` in its fragment) is left out for the
/// others when no `--arch` was given, and is an error for an arch asked
/// for by name.
pub fn cells(sel: &KernelSelection) -> Result<Vec<CellId>> {
    let (arches, configs) = (arches(sel)?, configs(sel)?);
    let mut out = Vec::new();
    for kernel in kernels(sel)? {
        let of_kernel = cells_of(&arches, &configs, source_kind(sel), !sel.arches.is_empty())?;
        out.extend(of_kernel.into_iter().map(|c| c.of_kernel(kernel)));
    }
    Ok(out)
}

/// The kernel lines `--kernel` names (a list, or `all`), oldest first;
/// mainline when none is named (`Kernel::mainline`: kallsyms work is
/// posted and bisected there). With `--kernel-tree` the tree's Makefile
/// decides, and a `--kernel` that says otherwise is an error.
pub fn kernels(sel: &KernelSelection) -> Result<Vec<Kernel>> {
    let named = Kernel::parse_list(&sel.kernel_versions).map_err(|e| anyhow!("--kernel: {e}"))?;
    let Some(tree) = &sel.kernel_tree else {
        return Ok(named);
    };
    let kernel = source::tree_kernel(tree)?;
    if !sel.kernel_versions.is_empty() && named != [kernel] {
        bail!(
            "--kernel {}, but the tree of --kernel-tree {} is Linux {kernel}",
            sel.kernel_versions.join(","),
            tree.display()
        );
    }
    Ok(vec![kernel])
}

/// The one kernel line of a command that runs one at a time (`run`,
/// `bisect`, `faults`): mainline unless `--kernel` names another.
pub fn kernel(sel: &KernelSelection) -> Result<Kernel> {
    match kernels(sel)?.as_slice() {
        [one] => Ok(*one),
        many => bail!(
            "--kernel {}: this command runs one kernel line at a time; run it once per line",
            many.iter()
                .map(|k| k.version())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// [`cells`] for explicit lists; `strict`: an inapplicable pair is an error.
pub fn cells_of(
    arches: &[&'static ArchProfile],
    configs: &[Config],
    source: SourceKind,
    strict: bool,
) -> Result<Vec<CellId>> {
    let mut out = Vec::new();
    for &arch in arches {
        for (variant, toolchain) in configs {
            if harness::kernel::kconfig::variant_applies(variant, arch)? {
                out.push(CellId::new(arch, variant, *toolchain, source));
            } else if strict {
                // Names the arches the config is for.
                harness::kernel::kconfig::fragments(arch, variant)?;
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
pub fn cells_ready(sel: &KernelSelection, needs: &prereqs::Needs) -> Result<Vec<CellId>> {
    let cells = cells(sel)?;
    for kernel in kernels(sel)? {
        let of_kernel: Vec<CellId> = cells
            .iter()
            .filter(|c| c.kernel == kernel)
            .cloned()
            .collect();
        needs.ensure(&selected(sel, arches_of(&of_kernel), kernel))?;
    }
    Ok(cells)
}

/// The distinct arches of `cells`, in order (for the prerequisites).
pub fn arches_of(cells: &[CellId]) -> Vec<&'static ArchProfile> {
    let mut arches: Vec<_> = cells.iter().map(|c| c.arch).collect();
    arches.dedup_by_key(|a| a.name);
    arches
}

/// Where the source of `kernel`'s cells comes from (`kernel` is one of
/// [`kernels`]).
pub fn source_spec(sel: &KernelSelection, kernel: Kernel) -> Result<SourceSpec> {
    Ok(match (&sel.kernel_tree, sel.baseline) {
        (Some(_), true) => bail!(
            "--baseline selects the unpatched Debian source; with --kernel-tree, check out the baseline commit instead"
        ),
        (Some(tree), false) => SourceSpec::Tree(tree.clone()),
        (None, baseline) => SourceSpec::Debian {
            kernel,
            variant: if baseline { Variant::Baseline } else { Variant::Patched },
        },
    })
}

/// The source of `kernel`'s cells, made ready (fetched, unpacked,
/// patched).
pub fn prepare_source(sel: &KernelSelection, kernel: Kernel) -> Result<KernelSource> {
    let source = source::prepare(&source_spec(sel, kernel)?)?;
    if source.kernel != kernel {
        bail!(
            "--kernel {kernel}, but the tree of --kernel-tree is Linux {} ({})",
            source.kernel,
            source.describe
        );
    }
    Ok(source)
}

/// What the kernels of `sel` on `arches` add to a subcommand's
/// prerequisites (`prereqs::Needs::ensure`).
pub fn selected<'a>(
    sel: &KernelSelection,
    arches: Vec<&'a ArchProfile>,
    kernel: Kernel,
) -> prereqs::Selected<'a> {
    prereqs::Selected {
        arches,
        user_tree: sel.kernel_tree.is_some(),
        llvm: needs_llvm(sel),
        kernel,
    }
}

pub fn jobs(sel: &KernelSelection) -> usize {
    sel.jobs.unwrap_or_else(harness::process::default_jobs)
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
            kernel_versions: Vec::new(),
            jobs: None,
        }
    }

    #[test]
    fn config_labels_cross_variants_with_toolchains() {
        let labels = |s: &KernelSelection| -> Vec<String> {
            let cells = cells_of(
                &[&arch::X86_64],
                &configs(s).unwrap(),
                SourceKind::Patched,
                true,
            );
            cells.unwrap().iter().map(|c| c.label()).collect()
        };
        let s = sel(&["minimal", "kaslr"], &[Toolchain::Llvm, Toolchain::Gcc]);
        assert_eq!(
            labels(&s),
            ["minimal", "minimal-llvm", "kaslr", "kaslr-llvm"]
        );
        assert!(needs_llvm(&s));
        let s = sel(&["minimal"], &[]);
        assert_eq!(labels(&s), ["minimal"]);
        assert!(!needs_llvm(&s));
        // A label as test names print it is accepted as it is.
        let s = sel(&["minimal-llvm"], &[]);
        assert_eq!(labels(&s), ["minimal-llvm"]);
        assert!(needs_llvm(&s));
        assert!(configs(&sel(&["nope-llvm"], &[])).is_err());
    }
}
