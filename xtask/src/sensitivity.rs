//! `cargo xtask sensitivity`: for every case of every probe, the kernels
//! that make it fail — the unpatched baseline (`baseline_failures` in the
//! probe registry, proven by `cargo xtask test --expect-baseline-failures`),
//! the mutants that name it (`must-fail:` in each kernel line's
//! `patches/<kernel>/mutants/`, proven by `cargo xtask mutants --kernel
//! <kernel>`; a mutant is listed once with the lines that carry it), the
//! faults that make it fail
//! (`faults::FAULT_CASES`, proven by `cargo xtask faults`) — or, for a case
//! no kernel makes fail, the registry's reason (`NO_FAILING_KERNEL`). The
//! map is kept in `docs/sensitivity.md`; `--check` (and `cargo test`)
//! fails when the file is stale or a case has neither.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Result};
use harness::cell::Kernel;

use crate::flags::SensitivityArgs;

/// The map's file, relative to the project root.
pub const MAP_FILE: &str = "docs/sensitivity.md";

/// A mutant that names a case: one mutant name (the same bug on every
/// kernel line that carries it), the lines whose mutants dir has it with
/// that case, and the arch it is for when its `must-fail:` says `@ARCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutantRef {
    pub name: String,
    pub arch: Option<String>,
    pub kernels: Vec<Kernel>,
}

/// What makes one case fail.
#[derive(Debug, Default)]
pub struct Entry {
    pub baseline: bool,
    /// The kernel lines whose baseline alone fails it
    /// (`ksh_proto::KERNEL_BASELINE_FAILURES`).
    pub baseline_of: Vec<&'static str>,
    pub mutants: Vec<MutantRef>,
    pub faults: Vec<String>,
    /// The registry's reason why no kernel makes it fail.
    pub declared: Option<&'static str>,
}

impl Entry {
    fn has_failing_kernel(&self) -> bool {
        self.baseline
            || !self.baseline_of.is_empty()
            || !self.mutants.is_empty()
            || !self.faults.is_empty()
    }
}

/// Every case (`PROBE/CASE`, the same in every cell) with what makes it
/// fail; errors name a `must-fail:` or `FAULT_CASES` entry that is no case.
pub fn map() -> Result<BTreeMap<String, Entry>> {
    use harness::cell::{CellId, SourceKind, TestName, Toolchain};
    let kind = SourceKind::Patched;
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    // The cases of every kernel line (today the same set).
    for kernel in Kernel::all() {
        let cell = CellId::new(
            harness::cell::arch::by_name("x86_64")?,
            "minimal",
            Toolchain::Gcc,
            kind,
        )
        .of_kernel(kernel);
        for n in harness::testrun::test_names(&cell) {
            if let Some(t) = TestName::parse(&n, kind) {
                map.entry(t.probe_case()).or_default();
            }
        }
    }
    let mut unknown = Vec::new();
    for p in ksh_proto::PROBES {
        for c in p.baseline_failures {
            match map.get_mut(&format!("{}/{c}", p.name)) {
                Some(e) => e.baseline = true,
                None => unknown.push(format!("baseline failure {}/{c}", p.name)),
            }
        }
    }
    for f in ksh_proto::KERNEL_BASELINE_FAILURES {
        match map.get_mut(&format!("{}/{}", f.probe, f.case)) {
            Some(e) => e.baseline_of.extend(f.kernels),
            None => unknown.push(format!("kernel baseline failure {}/{}", f.probe, f.case)),
        }
    }
    for kernel in Kernel::all() {
        for m in harness::kernel::mutants::load_for(kernel)? {
            let on_one_arch = m.must_fail_on.iter().map(|(c, a)| (c, Some(a.clone())));
            for (c, arch) in m.must_fail.iter().map(|c| (c, None)).chain(on_one_arch) {
                let Some(e) = map.get_mut(c) else {
                    unknown.push(format!(
                        "mutant {} of {}: must-fail {c}",
                        m.name,
                        harness::kernel::mutants::dir_name(kernel)
                    ));
                    continue;
                };
                match e
                    .mutants
                    .iter_mut()
                    .find(|r| r.name == m.name && r.arch == arch)
                {
                    Some(r) => r.kernels.push(kernel),
                    None => e.mutants.push(MutantRef {
                        name: m.name.clone(),
                        arch,
                        kernels: vec![kernel],
                    }),
                }
            }
        }
    }
    for e in map.values_mut() {
        e.mutants.sort_by(|a, b| a.name.cmp(&b.name));
    }
    for (fault, fails) in crate::faults::FAULT_CASES {
        for c in *fails {
            match map.get_mut(*c) {
                Some(e) => e.faults.push(fault.to_string()),
                None => unknown.push(format!("fault {fault}: {c}")),
            }
        }
    }
    for (c, why) in ksh_proto::NO_FAILING_KERNEL {
        match map.get_mut(*c) {
            Some(e) => e.declared = Some(why),
            None => unknown.push(format!("NO_FAILING_KERNEL {c}")),
        }
    }
    if !unknown.is_empty() {
        bail!(
            "these name no case of the registry (renamed?): {}",
            unknown.join("; ")
        );
    }
    Ok(map)
}

/// The map as markdown.
pub fn render(map: &BTreeMap<String, Entry>) -> String {
    let failing = map.values().filter(|e| e.has_failing_kernel()).count();
    let declared = map
        .values()
        .filter(|e| !e.has_failing_kernel() && e.declared.is_some())
        .count();
    let mut s = String::new();
    s.push_str(
        "# Sensitivity map: which kernels make each case fail\n\n\
         Written by `cargo xtask sensitivity --write`; `cargo test` fails when it is stale\n\
         or a case has neither a failing kernel nor a reason. Each entry is proven by a\n\
         command `.ci/run` runs: `baseline` by `cargo xtask test --expect-baseline-failures`\n\
         (the case fails on the unpatched kernel, both arches; `baseline of 7.3`: on that\n\
         line's baseline only, `ksh_proto::KERNEL_BASELINE_FAILURES`), a mutant by `cargo xtask\n\
         mutants --kernel K` for each kernel line K in its parentheses (the case fails with\n\
         its own count on that known-bad kernel, planted by `patches/K/mutants/NAME.patch`;\n\
         an arch after `;` when the mutant names the case for that arch only), a fault by\n\
         `cargo xtask faults`.\n\n",
    );
    let _ = writeln!(
        s,
        "{} cases: {failing} with at least one failing kernel, {declared} declared without one (reason given), {} with neither.\n",
        map.len(),
        map.len() - failing - declared
    );
    s.push_str("| case | fails on | or why no kernel makes it fail |\n|---|---|---|\n");
    for (case, e) in map {
        let mut on = Vec::new();
        if e.baseline {
            on.push("baseline".to_string());
        }
        on.extend(e.baseline_of.iter().map(|k| format!("baseline of {k}")));
        on.extend(e.mutants.iter().map(|m| {
            let kernels: Vec<&str> = m.kernels.iter().map(|k| k.version()).collect();
            match &m.arch {
                Some(arch) => format!("mutant `{}` ({}; {arch})", m.name, kernels.join(", ")),
                None => format!("mutant `{}` ({})", m.name, kernels.join(", ")),
            }
        }));
        on.extend(e.faults.iter().map(|f| format!("fault `{f}`")));
        let why = match (e.has_failing_kernel(), e.declared) {
            (_, Some(why)) => why.to_string(),
            (true, None) => String::new(),
            (false, None) => "**NOTHING: no failing kernel and no reason**".to_string(),
        };
        let _ = writeln!(s, "| `{case}` | {} | {why} |", on.join(", "));
    }
    s
}

/// The cases with neither a failing kernel nor a declared reason.
pub fn uncovered(map: &BTreeMap<String, Entry>) -> Vec<&str> {
    map.iter()
        .filter(|(_, e)| !e.has_failing_kernel() && e.declared.is_none())
        .map(|(c, _)| c.as_str())
        .collect()
}

fn map_path() -> PathBuf {
    harness::layout::project_root().join(MAP_FILE)
}

pub fn run(args: SensitivityArgs) -> Result<i32> {
    let map = map()?;
    let text = render(&map);
    if args.write {
        let path = map_path();
        harness::layout::ensure_dir(path.parent().expect("docs/"))?;
        std::fs::write(&path, &text)?;
        eprintln!("ksh: wrote {}", path.display());
    } else if !args.check {
        print!("{text}");
    }
    let bare = uncovered(&map);
    if !bare.is_empty() {
        eprintln!(
            "sensitivity: {} case(s) no kernel makes fail and the registry gives no reason for (ksh_proto::NO_FAILING_KERNEL): {}",
            bare.len(),
            bare.join(", ")
        );
        return Ok(1);
    }
    if args.check {
        let committed = std::fs::read_to_string(map_path()).unwrap_or_default();
        if committed != text {
            eprintln!("sensitivity: {MAP_FILE} is stale: run `cargo xtask sensitivity --write`");
            return Ok(1);
        }
        eprintln!(
            "sensitivity: {MAP_FILE} is current; every case has a failing kernel or a reason"
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_a_failing_kernel_or_a_reason_and_the_map_is_current() {
        let map = map().unwrap();
        assert_eq!(uncovered(&map), Vec::<&str>::new());
        let committed = std::fs::read_to_string(map_path()).unwrap_or_default();
        assert!(
            committed == render(&map),
            "{MAP_FILE} is stale: run `cargo xtask sensitivity --write`"
        );
    }
}
