//! The judge: every verdict of a cell, as one pure function
//! ([`judge`]) from what a run left (the build step's records, the VM's
//! outcome, the KTAP report, the console text, the build info, the cell
//! and the mode of the run) to its case results. No file or disk is read
//! here: the runner (`testrun`) gathers every fact first, and saves the
//! record in the run dir (`results::run_record`), so `cargo xtask judge
//! RUN_DIR` judges a saved run again (as `kunit.py parse` does).
//!
//! The verdicts: `build/kernel` from the build's outcome;
//! `build/generators-agree` and `build/link-stable` from their checks'
//! records (the checks run as build steps, `kernel::generator_check`,
//! `kernel::linkstable`); `boot/vm-completed` from the VM's exit, the
//! stream's completion record and the run dir's free space;
//! `boot/no-kernel-warnings` from the console text (`bootlog`); each probe
//! case from its KTAP result (count lines required, XFAIL fails, declared
//! skips only, a measurement only with its figure, `Status::NotRun` for
//! what never ran, the strict baseline proof); in mutant mode, the
//! mutant's verdict from those ([`mutant`]).

mod case;
pub mod mutant;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ksh_proto::files::BuildInfo;
use serde::{Deserialize, Serialize};

use crate::cell::{arch, CellId, Kernel, SourceKind, Status, TestName};
use crate::kernel::generator_check::{GeneratorsRecord, CHECK_OPTION};
use crate::kernel::linkstable::LinkStableRecord;
use crate::kernel::mutants::MutantRule;
use crate::results::bootlog;
use crate::results::ktap;
use crate::results::report::CaseResult;
use crate::vm::qemu::{self, Accel, Exit};

pub use case::CaseCount;
pub use mutant::Verdict;

pub use crate::cell::{
    BUILD_CASE, BUILD_CASES, GENERATORS_CASE, LINK_STABLE_CASE, VM_CASE, WARNINGS_CASE,
};

/// Below this much free space the run dir counts as full (a console log
/// or a results stream no longer fits).
pub const RUN_DIR_MIN_FREE: u64 = 256 * 1024;

/// The version of [`JudgeInput`]'s saved form; a record of another
/// version is refused with both numbers.
pub const RECORD_FORMAT: u32 = 1;

/// Every test name of a cell, in report order.
pub fn case_names(cell: &CellId) -> Vec<String> {
    BUILD_CASES
        .into_iter()
        .chain([VM_CASE, WARNINGS_CASE])
        .chain(
            ksh_proto::PROBES
                .iter()
                .flat_map(|p| p.cases.iter().map(move |c| (p.name, *c))),
        )
        .map(|(probe, case)| TestName::new(cell, probe, case).to_string())
        .collect()
}

/// Everything the judge needs besides the two texts of the run dir
/// ([`RunTexts`]); saved as `judge-input.json` in the run dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgeInput {
    /// [`RECORD_FORMAT`] of the harness that wrote it.
    pub format: u32,
    pub cell: CellFacts,
    pub mode: Mode,
    pub build: BuildRecord,
    /// None when the build failed (nothing was booted).
    pub boot: Option<BootRecord>,
    /// The build's facts (`build-info.txt`), for the registry's
    /// `APPLICABILITY`: a SKIP is only allowed where it says the case does
    /// not apply. Saved as the text of `build-info.txt`.
    #[serde(with = "build_info_text")]
    pub build_info: BuildInfo,
    /// The boot log's allow-list as the run read it.
    pub allow_list: AllowList,
}

/// [`BuildInfo`] in a run record: the text of `build-info.txt`, as the
/// guest gets it.
mod build_info_text {
    use ksh_proto::files::BuildInfo;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(info: &BuildInfo, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&info.encode())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BuildInfo, D::Error> {
        let text = String::deserialize(d)?;
        BuildInfo::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// The cell's identity as the verdicts need it; saved as
/// [`CellFactsRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CellFactsRecord", into = "CellFactsRecord")]
pub struct CellFacts {
    pub id: CellId,
    /// The `cargo xtask run` line that boots this cell, for messages.
    pub explore_command: String,
}

/// [`CellFacts`] as `judge-input.json` holds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellFactsRecord {
    /// The kernel line (`7.3`); a record written before kernels were a
    /// dimension of every cell has none, and was of 6.12.
    #[serde(default = "kernel_of_old_records")]
    pub kernel: String,
    pub arch: String,
    /// The config label (`minimal`, `minimal-llvm`).
    pub config: String,
    /// The config variant without the toolchain (`ksh_proto::CellKind`).
    pub variant: String,
    pub baseline: bool,
    pub user_tree: bool,
    pub explore_command: String,
}

fn kernel_of_old_records() -> String {
    Kernel::default().version().to_string()
}

impl TryFrom<CellFactsRecord> for CellFacts {
    type Error = String;

    fn try_from(r: CellFactsRecord) -> Result<Self, String> {
        let source = match (r.user_tree, r.baseline) {
            (true, _) => SourceKind::UserTree,
            (false, true) => SourceKind::Baseline,
            (false, false) => SourceKind::Patched,
        };
        let kernel = Kernel::parse(&r.kernel)?;
        let id = CellId::with_label(
            arch::by_name(&r.arch).map_err(|e| e.to_string())?,
            &r.config,
            source,
        )
        .of_kernel(kernel);
        if id.variant != r.variant {
            return Err(format!(
                "the config label {:?} is of the variant {:?}, not {:?}",
                r.config, id.variant, r.variant
            ));
        }
        Ok(CellFacts {
            id,
            explore_command: r.explore_command,
        })
    }
}

impl From<CellFacts> for CellFactsRecord {
    fn from(f: CellFacts) -> Self {
        CellFactsRecord {
            kernel: f.id.kernel.version().to_string(),
            arch: f.id.arch.name.to_string(),
            config: f.id.label(),
            baseline: f.id.source == SourceKind::Baseline,
            user_tree: f.id.source == SourceKind::UserTree,
            variant: f.id.variant,
            explore_command: f.explore_command,
        }
    }
}

impl CellFacts {
    /// `KERNEL/ARCH/CONFIG`.
    pub fn name(&self) -> String {
        self.id.name()
    }

    /// What the registry's `declared_in` scopes look at.
    pub fn kind(&self) -> ksh_proto::CellKind<'_> {
        ksh_proto::CellKind {
            variant: &self.id.variant,
            baseline: self.id.source == SourceKind::Baseline,
            user_tree: self.id.source == SourceKind::UserTree,
        }
    }

    /// The cell's source and config in words, for messages.
    fn describe_kind(&self) -> String {
        let source = match self.id.source {
            SourceKind::UserTree => "a --kernel-tree",
            SourceKind::Baseline => "the baseline source",
            SourceKind::Patched | SourceKind::SeriesPrefix => "the patched source",
        };
        format!("config variant {} on {source}", self.id.variant)
    }
}

/// How a run's cases are judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Normal,
    /// The baseline proof: listed cases must fail with a count (see
    /// `judge_baseline_case`).
    BaselineProof,
    /// A known-bad kernel: the cases are judged as usual, then the mutant
    /// by its must-fail cases' verdicts.
    Mutant(MutantRule),
}

/// What the build step left.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildRecord {
    /// The build failed with `error`; `generators` when the link stopped
    /// on the generators' disagreement.
    Failed {
        error: String,
        generators: Option<GeneratorsRecord>,
    },
    Built {
        elapsed: Duration,
        ran_make: bool,
        generators: GeneratorsRecord,
        link_stable: LinkStableRecord,
    },
}

/// What became of the boot of a built kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootRecord {
    /// The harness failed before or during the boot (expectations, the
    /// initramfs, QEMU that cannot start).
    HarnessError(String),
    Ran(VmRecord),
}

/// The VM's outcome, without the texts of the run dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmRecord {
    pub exit: Exit,
    pub accel: Accel,
    /// Where the run's files are (named in failure messages).
    pub run_dir: PathBuf,
    pub elapsed: Duration,
    pub boot_to_results: Option<Duration>,
    /// Free bytes in the run dir after the run (None: unknown).
    pub run_dir_free: Option<u64>,
}

/// `kernel-configs/boot-log-allow.txt` as the run read it (or why it could
/// not).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllowList {
    pub path: PathBuf,
    pub text: Result<String, String>,
}

/// The run dir's two texts: the guest's KTAP report and the console log.
#[derive(Debug, Clone)]
pub struct RunTexts {
    /// `results.ktap` (empty when nothing was booted).
    pub results: String,
    /// `console.log`, or why it could not be read.
    pub console: Result<String, String>,
}

/// The verdicts of a cell.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    /// Every case of the cell, in report order.
    pub cases: Vec<CaseResult>,
    /// The count line of every case that reported one, in registry order.
    pub counts: Vec<CaseCount>,
    /// The figures of the cases that measure instead of checking:
    /// `(probe/case, figure line)`.
    pub measured: Vec<(String, String)>,
    /// The mutant's verdict, in mutant mode.
    pub mutant: Option<Verdict>,
}

/// Judges a cell from what its run left.
pub fn judge(input: &JudgeInput, texts: &RunTexts) -> Judged {
    let cell = &input.cell;
    let name = |(probe, case): (&str, &str)| TestName::new(&cell.id, probe, case).to_string();
    let mut judged = Judged::default();
    let cases = &mut judged.cases;
    let mut vm_exit = None;
    let not_run = match &input.build {
        BuildRecord::Failed { error, generators } => {
            cases.push(CaseResult {
                name: name(BUILD_CASE),
                status: Status::fail(error.clone()),
            });
            if let Some(g) = generators {
                cases.push(CaseResult {
                    name: name(GENERATORS_CASE),
                    status: generators_verdict(g),
                });
            }
            Some("the kernel build failed")
        }
        BuildRecord::Built {
            generators,
            link_stable,
            ..
        } => {
            cases.push(CaseResult {
                name: name(BUILD_CASE),
                status: Status::Pass,
            });
            cases.push(CaseResult {
                name: name(GENERATORS_CASE),
                status: declared_skip_only(cell, GENERATORS_CASE, generators_verdict(generators)),
            });
            cases.push(CaseResult {
                name: name(LINK_STABLE_CASE),
                status: link_stable_verdict(link_stable),
            });
            match &input.boot {
                Some(BootRecord::Ran(vm)) => {
                    vm_exit = Some(&vm.exit);
                    let (vm_cases, counts) = run_cases(input, vm, texts);
                    cases.extend(vm_cases);
                    judged.counts = counts;
                    None
                }
                Some(BootRecord::HarnessError(e)) => {
                    cases.push(CaseResult {
                        name: name(VM_CASE),
                        status: Status::harness_fail(e.clone()),
                    });
                    Some("the harness could not boot this cell")
                }
                None => {
                    cases.push(CaseResult {
                        name: name(VM_CASE),
                        status: Status::harness_fail(
                            "the record of a built kernel has no boot".into(),
                        ),
                    });
                    Some("the harness could not boot this cell")
                }
            }
        }
    };
    if let Some(why) = not_run {
        for n in case_names(&cell.id) {
            if !cases.iter().any(|c| c.name == n) {
                cases.push(CaseResult {
                    name: n,
                    status: Status::NotRun(why.to_string()),
                });
            }
        }
    }
    judged.measured = judged
        .cases
        .iter()
        .filter_map(|c| match &c.status {
            Status::Measured(figure) => Some((
                TestName::parse(&c.name, cell.id.source)
                    .map_or_else(|| c.name.clone(), |t| t.probe_case()),
                figure.clone(),
            )),
            _ => None,
        })
        .collect();
    if let Mode::Mutant(rule) = &input.mode {
        judged.mutant = Some(mutant::judge_mutant(
            rule,
            &cell.id,
            &judged.cases,
            &judged.counts,
            vm_exit,
        ));
    }
    judged
}

/// `status`, except that a SKIP of `probe/case` fails unless the registry
/// declares the case not applicable in this cell
/// (`ksh_proto::skip_declared`): a kernel that lost a feature its config
/// should have is a failure, not a skip.
pub fn declared_skip_only(cell: &CellFacts, (probe, case): (&str, &str), status: Status) -> Status {
    match status {
        Status::Skip(why) if !ksh_proto::skip_declared(probe, case, &cell.kind()) => {
            Status::fail(format!(
                "skipped ({why}), but ksh_proto::APPLICABILITY does not declare {probe}/{case} not applicable in {}: this kernel lost a feature its config should have (an option no fragment pins, or a patch that stopped declaring it)",
                cell.describe_kind()
            ))
        }
        s => s,
    }
}

/// `build/generators-agree` from its check's record: the link's own
/// message when it stopped on a disagreement; after a build, at least one
/// pass compared and no problem; not configured is the registry's skip.
pub fn generators_verdict(record: &GeneratorsRecord) -> Status {
    match record {
        GeneratorsRecord::NotConfigured => Status::Skip(
            ksh_proto::not_applicable(GENERATORS_CASE.0, GENERATORS_CASE.1, "", &|_| None)
                .unwrap_or("the generator check is not configured")
                .to_string(),
        ),
        GeneratorsRecord::Unreadable { error } => Status::fail(error.clone()),
        GeneratorsRecord::LinkStopped { shown, build_log } => Status::fail(format!(
            "the link stopped: the C and Rust generators wrote different tables (first differences, `diff C Rust`):\n{}\nbuild log: {}",
            shown.join("\n"),
            build_log.display()
        )),
        GeneratorsRecord::Compared { dir, passes, .. } if passes.is_empty() => {
            Status::fail(format!(
                "{CHECK_OPTION}=y, but no link pass output (.tmp_vmlinux*.kallsyms.S) is in {}: nothing was compared",
                dir.display()
            ))
        }
        GeneratorsRecord::Compared { problems, .. } if problems.is_empty() => Status::Pass,
        GeneratorsRecord::Compared { dir, problems, .. } => {
            Status::fail(format!("in {}: {}", dir.display(), problems.join("; ")))
        }
    }
}

/// `build/link-stable` from its check's record.
pub fn link_stable_verdict(record: &LinkStableRecord) -> Status {
    match &record.outcome {
        Ok(_) => Status::Pass,
        Err(why) => Status::fail(format!("{why}\nbuild dir: {}", record.dir.display())),
    }
}

/// Where a failed case's files are, and how to explore the cell.
fn where_to_look(cell: &CellFacts, run_dir: &Path) -> String {
    format!(
        "{}\nto explore: {}",
        qemu::where_to_look(run_dir),
        cell.explore_command
    )
}

/// The cases of a booted cell: the VM case, the boot log, every probe
/// case; and the count lines reported.
fn run_cases(
    input: &JudgeInput,
    vm: &VmRecord,
    texts: &RunTexts,
) -> (Vec<CaseResult>, Vec<CaseCount>) {
    let cell = &input.cell;
    let name = |(probe, case): (&str, &str)| TestName::new(&cell.id, probe, case).to_string();
    let report = ktap::parse(&texts.results, ksh_proto::COMPLETION_RECORD);
    let where_to_look = where_to_look(cell, &vm.run_dir);
    let mut out = Vec::new();
    let mut counts = Vec::new();
    let info_fn = |k: &str| input.build_info.get(k).map(str::to_string);

    let vm_status = vm_verdict(vm, &report, &where_to_look);
    let vm_ok = vm_status == Status::Pass;
    out.push(CaseResult {
        name: name(VM_CASE),
        status: vm_status,
    });
    out.push(CaseResult {
        name: name(WARNINGS_CASE),
        status: warnings_verdict(&texts.console, &input.allow_list, &where_to_look),
    });

    let baseline_proof = input.mode == Mode::BaselineProof;
    for probe in ksh_proto::PROBES {
        for case in probe.cases {
            let result = report.find(&[probe.name, case]);
            let count = result.and_then(|r| case::count_of(r, probe.name, case));
            if let Some(c) = &count {
                counts.push(c.clone());
            }
            let status = match result {
                Some(r) => {
                    let not_applicable =
                        ksh_proto::not_applicable(probe.name, case, cell.id.arch.name, &info_fn);
                    case::judge_case(probe.name, case, r, count.as_ref(), not_applicable)
                }
                None if vm_ok => {
                    Status::fail("the guest reported no result for this case".to_string())
                }
                None => Status::NotRun(format!(
                    "the VM did not complete (see {}/{})",
                    VM_CASE.0, VM_CASE.1
                )),
            };
            let status = declared_skip_only(cell, (probe.name, case), status);
            let listed = ksh_proto::is_baseline_failure(probe.name, case, cell.id.kernel.version());
            let status = if baseline_proof && listed {
                case::judge_baseline_case(status, result, count.as_ref(), vm_ok)
            } else {
                status
            };
            let status = match status {
                Status::Fail { kind, detail } => Status::Fail {
                    kind,
                    detail: format!("{}\n{where_to_look}", detail.trim()),
                },
                s => s,
            };
            out.push(CaseResult {
                name: name((probe.name, case)),
                status,
            });
        }
    }
    (out, counts)
}

/// `boot/vm-completed`: did the guest run to completion and stop cleanly?
fn vm_verdict(vm: &VmRecord, report: &ktap::Report, where_to_look: &str) -> Status {
    let mut problems = Vec::new();
    match &vm.exit {
        Exit::PoweredOff | Exit::Reset => {}
        Exit::Panic { excerpt } => problems.push(format!("kernel panic:\n{excerpt}")),
        Exit::Timeout { what } => problems.push(format!("timeout: {what}")),
        Exit::QemuFailed { status, stderr } => {
            problems.push(format!("QEMU failed ({status}):\n{}", stderr.trim()))
        }
        Exit::Interrupted => problems.push("interrupted".into()),
    }
    // QEMU writes the console log and the results into the run dir; on a
    // full filesystem they stop short and the guest only looks silent.
    let run_dir_full = vm.run_dir_free.is_some_and(|b| b < RUN_DIR_MIN_FREE);
    if run_dir_full {
        problems.push(format!(
            "no space left on device in the run dir {} ({} bytes free): the console log and the results were cut short, so what follows is not the guest's fault",
            vm.run_dir.display(),
            vm.run_dir_free.unwrap_or(0)
        ));
    }
    if report.completion.is_none() {
        problems.push(if run_dir_full {
            "the result stream has no completion record (the run dir is full)".into()
        } else {
            "the result stream has no completion record: the guest crashed or hung".into()
        });
    }
    for e in &report.errors {
        problems.push(format!(
            "malformed result stream, line {}: {}: {:?}",
            e.line_no, e.message, e.line
        ));
    }
    if problems.is_empty() {
        Status::Pass
    } else {
        Status::fail(format!(
            "{}\naccelerator: {}\n{where_to_look}",
            problems.join("\n"),
            vm.accel.name()
        ))
    }
}

/// `boot/no-kernel-warnings`: the console text, whatever became of the VM.
fn warnings_verdict(
    console: &Result<String, String>,
    allow: &AllowList,
    where_to_look: &str,
) -> Status {
    let console = match console {
        Ok(c) => c,
        Err(e) => return Status::fail(e.clone()),
    };
    if console.trim().is_empty() {
        return Status::fail(format!("the console log is empty\n{where_to_look}"));
    }
    let allow = match &allow.text {
        Ok(text) => match bootlog::parse_allow_list(text) {
            Ok(a) => a,
            Err(e) => return Status::fail(format!("in {}: {e:#}", allow.path.display())),
        },
        Err(e) => return Status::fail(e.clone()),
    };
    let (bad, allowed) = bootlog::unexplained(console, &allow);
    if bad.is_empty() {
        return Status::Pass;
    }
    // The first line names the first warning: it is what a one-line
    // summary (the CI job summary, a terminal) shows.
    Status::fail(format!(
        "{} kernel warning line(s) not explained by {} ({allowed} allowed), first: {}\n{}\n{where_to_look}",
        bad.len(),
        bootlog::ALLOW_FILE,
        bad[0].trim(),
        bad.iter()
            .take(20)
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}
