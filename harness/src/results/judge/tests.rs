//! The judge's verdicts on made-up runs (the saved real runs are judged
//! in `harness/tests/saved_runs.rs`).

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::kernel::generator_check::GeneratorsRecord;
use crate::kernel::linkstable::LinkStableRecord;
use crate::results::report::CaseResult;

/// A console log with no warning in it.
const QUIET_CONSOLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/ktap-data/quiet-console.log"
));

const INFO: &str = "kprobes=1\nfunction_tracer=1\ndynamic_ftrace=1\nkallsyms_selftest=0\n";

/// x86_64 with `config`, on the patched source or the baseline.
fn facts(config: &str, baseline: bool) -> CellFacts {
    let source = if baseline {
        SourceKind::Baseline
    } else {
        SourceKind::Patched
    };
    CellFacts {
        id: CellId::with_label(&crate::cell::arch::X86_64, config, source),
        explore_command: "cargo xtask run --arch x86_64".into(),
    }
}

/// A build whose checks passed.
fn built() -> BuildRecord {
    BuildRecord::Built {
        elapsed: Duration::from_secs(1),
        ran_make: false,
        generators: GeneratorsRecord::Compared {
            dir: PathBuf::from("/build"),
            passes: vec![".tmp_vmlinux1.kallsyms.S".into()],
            problems: Vec::new(),
        },
        link_stable: LinkStableRecord {
            dir: PathBuf::from("/build"),
            outcome: Ok("pass".into()),
        },
    }
}

fn input(cell: CellFacts, exit: Exit, mode: Mode, info: &str) -> JudgeInput {
    JudgeInput {
        format: RECORD_FORMAT,
        cell,
        mode,
        build: built(),
        boot: Some(BootRecord::Ran(VmRecord {
            exit,
            accel: Accel::Tcg,
            run_dir: PathBuf::from("/runs/x"),
            elapsed: Duration::from_secs(1),
            boot_to_results: None,
            run_dir_free: None,
        })),
        build_info: ksh_proto::files::BuildInfo::decode(info).unwrap(),
        allow_list: AllowList {
            path: PathBuf::from("boot-log-allow.txt"),
            text: Ok(String::new()),
        },
    }
}

/// x86_64/minimal on the patched source, powered off, judged normally.
fn clean_input() -> JudgeInput {
    input(
        facts("minimal", false),
        Exit::PoweredOff,
        Mode::Normal,
        INFO,
    )
}

fn texts(results: &str) -> RunTexts {
    RunTexts {
        results: results.into(),
        console: Ok(QUIET_CONSOLE.into()),
    }
}

/// The cases of x86_64/minimal on the patched source.
fn run(results: &str, exit: Exit, baseline_proof: bool) -> Vec<CaseResult> {
    let mode = if baseline_proof {
        Mode::BaselineProof
    } else {
        Mode::Normal
    };
    judge(
        &input(facts("minimal", false), exit, mode, INFO),
        &texts(results),
    )
    .cases
}

/// A complete stream in which every case passes after checking 10
/// items, except `failing` (3 of 10 mismatched, with diagnostics), and
/// those `kallsyms-selftest` skips as not applicable.
fn stream(failing: &[(&str, &str)]) -> String {
    stream_with(failing, |_, _| None)
}

/// [`stream`] with `custom(probe, case)` replacing a case's lines.
fn stream_with(failing: &[(&str, &str)], custom: impl Fn(&str, &str) -> Option<String>) -> String {
    let mut s = format!("KTAP version 1\n1..{}\n", ksh_proto::PROBES.len());
    for (i, p) in ksh_proto::PROBES.iter().enumerate() {
        s.push_str(&format!(
            "    KTAP version 1\n    # Subtest: {}\n    1..{}\n",
            p.name,
            p.cases.len()
        ));
        let mut all_ok = true;
        for (j, c) in p.cases.iter().enumerate() {
            let n = j + 1;
            if let Some(lines) = custom(p.name, c) {
                all_ok &= !lines.contains("not ok");
                s.push_str(&lines.replace("{n}", &n.to_string()));
            } else if p.name == "kallsyms-selftest" {
                s.push_str(&format!("    ok {n} {c} # SKIP no selftest\n"));
            } else if failing.contains(&(p.name, c)) {
                all_ok = false;
                s.push_str(&format!(
                    "    # 3 of 10 mismatched\n    # expected 0x10, got 0x20\n    {}\n    not ok {n} {c}\n",
                    ksh_proto::checked_line(p.name, c, 3, 10)
                ));
            } else if ksh_proto::is_counted(p.name, c) {
                s.push_str(&format!(
                    "    {}\n    ok {n} {c}\n",
                    ksh_proto::checked_line(p.name, c, 0, 10)
                ));
            } else {
                s.push_str(&format!(
                    "    # lookup_ns=120 format_ns=340 n=100 rounds=1\n    ok {n} {c}\n"
                ));
            }
        }
        s.push_str(&format!(
            "{} {} {}\n",
            if all_ok { "ok" } else { "not ok" },
            i + 1,
            p.name
        ));
    }
    s.push_str(&ksh_proto::completion_record(ksh_proto::PROBES.len()));
    s.push('\n');
    s
}

fn status_of<'a>(cases: &'a [CaseResult], suffix: &str) -> &'a Status {
    &cases
        .iter()
        .find(|c| c.name.ends_with(suffix))
        .unwrap_or_else(|| panic!("no case {suffix}"))
        .status
}

#[test]
fn build_cases_are_the_registry_s() {
    let names: Vec<&str> = BUILD_CASES.iter().map(|c| c.1).collect();
    assert!(BUILD_CASES.iter().all(|c| c.0 == "build"));
    assert_eq!(names, ksh_proto::BUILD_STEP_CASES);
}

#[test]
fn clean_run_passes_every_case() {
    let cases = run(&stream(&[]), Exit::PoweredOff, false);
    assert_eq!(
        cases.len(),
        case_names(&facts("minimal", false).id).len(),
        "every case of the cell, the build's too"
    );
    assert!(
        cases.iter().all(|c| c.status == Status::Pass
            || c.name.contains("/kallsyms-selftest/")
            || c.name.contains("/lookup-bench/")),
        "{cases:#?}"
    );
    assert!(matches!(
        status_of(&cases, "/kallsyms-selftest/verdict"),
        Status::Skip(_)
    ));
    assert_eq!(
        status_of(&cases, "/lookup-bench/measured"),
        &Status::Measured("lookup_ns=120 format_ns=340 n=100 rounds=1".into())
    );
}

/// The failure message of the case ending in `suffix`, in a normal run
/// of `stream`.
fn failure_of(stream: &str, suffix: &str) -> String {
    let cases = run(stream, Exit::PoweredOff, false);
    let Status::Fail { detail: msg, .. } = status_of(&cases, suffix) else {
        panic!("{cases:#?}")
    };
    msg.clone()
}

#[test]
fn a_measurement_passes_only_with_its_figure() {
    let s = stream_with(&[], |p, c| {
        ((p, c) == ("lookup-bench", "measured")).then(|| "    ok {n} measured\n".to_string())
    });
    let msg = failure_of(&s, "/lookup-bench/measured");
    assert!(msg.contains("nothing was measured"), "{msg}");
}

#[test]
fn declared_skips_name_real_config_variants() {
    // A variant named in `declared_in` that does not exist would
    // excuse nothing; one whose fragments ask for what `requires`
    // checks would excuse a lost feature.
    let variants = crate::kernel::kconfig::variant_names().unwrap();
    for a in ksh_proto::APPLICABILITY {
        for s in a.declared_in {
            if let ksh_proto::Scope::Config(v) = s {
                assert!(
                    variants.iter().any(|n| n == v),
                    "{}: no variant {v}",
                    a.probe
                );
                let text = std::fs::read_to_string(
                    crate::layout::kernel_configs_dir().join(format!("variants/{v}.config")),
                )
                .unwrap();
                assert!(
                    !text.contains("CONFIG_KALLSYMS_SELFTEST=y") || a.probe != "kallsyms-selftest",
                    "{v} has the selftest but declares it may skip"
                );
            }
        }
    }
}

#[test]
fn xfail_is_a_failure() {
    let s = stream_with(&[], |p, c| {
        ((p, c) == ("sizes", "start-size")).then(|| {
            format!(
                "    {}\n    not ok {{n}} start-size # XFAIL known\n",
                ksh_proto::checked_line("sizes", "start-size", 0, 10)
            )
        })
    });
    let msg = failure_of(&s, "/sizes/start-size");
    assert!(msg.contains("XFAIL"), "{msg}");
}

#[test]
fn a_skip_is_accepted_only_in_the_cells_the_registry_names() {
    // The selftest skips in every variant but `kprobes`, whose config
    // has it: there a skip is a lost feature.
    let judge_in = |config: &str| {
        judge(
            &input(facts(config, false), Exit::PoweredOff, Mode::Normal, INFO),
            &texts(&stream(&[])),
        )
        .cases
    };
    for ok in ["minimal", "minimal-llvm", "kaslr"] {
        let cases = judge_in(ok);
        assert!(
            cases
                .iter()
                .any(|c| c.name.ends_with("/kallsyms-selftest/verdict")
                    && matches!(c.status, Status::Skip(_))),
            "{ok}: {cases:#?}"
        );
    }
    for lost in ["kprobes", "kprobes-llvm"] {
        let cases = judge_in(lost);
        let c = cases
            .iter()
            .find(|c| c.name.ends_with("/kallsyms-selftest/verdict"))
            .unwrap();
        let Status::Fail { detail: msg, .. } = &c.status else {
            panic!("{lost}: {c:#?}")
        };
        assert!(
            msg.contains("does not declare") && msg.contains("config variant kprobes"),
            "{msg}"
        );
    }
    // A case no cell may skip (ftrace: common.config has the tracer).
    let s = stream_with(&[], |p, c| {
        (p == "ftrace").then(|| format!("    ok {{n}} {c} # SKIP needs CONFIG_DYNAMIC_FTRACE\n"))
    });
    let info = INFO.replace("dynamic_ftrace=1", "dynamic_ftrace=0");
    let cases = judge(
        &input(
            facts("minimal", false),
            Exit::PoweredOff,
            Mode::Normal,
            &info,
        ),
        &texts(&s),
    )
    .cases;
    let Status::Fail { detail: msg, .. } = status_of(&cases, "/ftrace/filter-all") else {
        panic!("{cases:#?}")
    };
    assert!(msg.contains("lost a feature"), "{msg}");
    // The host's own case: generators-agree may skip on the baseline
    // only.
    let skip = Status::Skip("no check".into());
    assert!(matches!(
        declared_skip_only(&facts("minimal", false), GENERATORS_CASE, skip.clone()),
        Status::Fail { .. }
    ));
    assert_eq!(
        declared_skip_only(&facts("minimal", true), GENERATORS_CASE, skip.clone()),
        skip
    );
}

#[test]
fn failing_case_carries_diagnostics_and_log_paths() {
    let cases = run(
        &stream(&[("proc-kallsyms", "addresses")]),
        Exit::PoweredOff,
        false,
    );
    let Status::Fail { detail: msg, .. } = status_of(&cases, "/proc-kallsyms/addresses") else {
        panic!()
    };
    assert!(
        msg.contains("expected 0x10, got 0x20") && msg.contains("console.log"),
        "{msg}"
    );
    assert_eq!(status_of(&cases, "/boot/vm-completed"), &Status::Pass);
}

#[test]
fn panic_fails_the_vm_case_and_marks_the_rest_not_run() {
    let partial = "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: boot\n    1..2\n    # ksh-checked: boot/init-ran 0 of 1 mismatched\n    ok 1 init-ran\n";
    let exit = Exit::Panic {
        excerpt: "Kernel panic - not syncing: Attempted to kill init!".into(),
    };
    let cases = run(partial, exit, false);
    let Status::Fail { detail: msg, .. } = status_of(&cases, "/boot/vm-completed") else {
        panic!()
    };
    assert!(
        msg.contains("Attempted to kill init") && msg.contains("no completion record"),
        "{msg}"
    );
    assert_eq!(
        status_of(&cases, "/boot/init-ran"),
        &Status::Pass,
        "a reported result is kept"
    );
    let Status::NotRun(why) = status_of(&cases, "/proc-kallsyms/format") else {
        panic!()
    };
    assert!(why.contains("the VM did not complete"), "{why}");
}

#[test]
fn hang_is_a_failure_never_a_pass() {
    let cases = run(
        "",
        Exit::Timeout {
            what: "no output for 45 s".into(),
        },
        false,
    );
    assert!(
        cases
            .iter()
            .filter(|c| !c.name.ends_with(WARNINGS_CASE.1) && !c.name.contains("/build/"))
            .all(|c| c.status.is_failure()),
        "{cases:#?}"
    );
}

#[test]
fn malformed_stream_fails_the_vm_case() {
    let mut s = stream(&[]);
    s = s.replacen("    ok 1 init-ran", "    ok one init-ran", 1);
    let cases = run(&s, Exit::PoweredOff, false);
    let Status::Fail { detail: msg, .. } = status_of(&cases, "/boot/vm-completed") else {
        panic!("{cases:#?}")
    };
    assert!(msg.contains("malformed result stream"), "{msg}");
}

/// Every case the registry lists as a baseline failure.
fn listed() -> Vec<(&'static str, &'static str)> {
    ksh_proto::PROBES
        .iter()
        .flat_map(|p| p.baseline_failures.iter().map(move |c| (p.name, *c)))
        .collect()
}

#[test]
fn strict_baseline_proof_accepts_counted_mismatches_only() {
    let cases = run(&stream(&listed()), Exit::PoweredOff, true);
    assert!(
        cases.iter().all(|c| c.status == Status::Pass
            || c.name.contains("/kallsyms-selftest/")
            || c.name.contains("/lookup-bench/")),
        "{cases:#?}"
    );
    // A listed case that passes fails the proof.
    let mut some = listed();
    some.retain(|c| *c != ("sizes", "start-size"));
    let cases = run(&stream(&some), Exit::PoweredOff, true);
    let Status::Fail { detail: msg, .. } = status_of(&cases, "/sizes/start-size") else {
        panic!()
    };
    assert!(msg.contains("must fail"), "{msg}");
}

#[test]
fn strict_baseline_proof_rejects_crash_timeout_setup_error_and_skip() {
    let target = ("weak-orphans", "fixture");
    for (lines, reason) in [
        // The probe died before reporting: the parent's synthesised line.
        (
            "    # probe process ended (signal: 11) before reporting this case\n    not ok {n} fixture\n",
            "without a count line",
        ),
        ("    not ok {n} fixture # TIMEOUT probe exceeded 30 s\n", "timed out"),
        (
            "    # /ksh/expect/orphans.txt: No such file or directory\n    not ok {n} fixture\n",
            "without a count line",
        ),
        ("    ok {n} fixture # SKIP nothing to do\n", "skipped"),
        (
            "    # 0 checked: no orphan\n    # ksh-checked: weak-orphans/fixture 0 of 0 mismatched\n    not ok {n} fixture\n",
            "checked 0 items",
        ),
        (
            "    # 2 of 5 mismatched\n    # ksh-checked: weak-orphans/fixture 2 of 5 mismatched\n    not ok {n} fixture\n",
            "no expected-vs-actual",
        ),
        // The guest's timing line is no diagnostic.
        (
            "    # 2 of 5 mismatched\n    # case-time: fixture 3 ms\n    # ksh-checked: weak-orphans/fixture 2 of 5 mismatched\n    not ok {n} fixture\n",
            "no expected-vs-actual",
        ),
    ] {
        let s = stream_with(&listed(), |p, c| {
            ((p, c) == target).then(|| lines.to_string())
        });
        let cases = run(&s, Exit::PoweredOff, true);
        let Status::Fail { detail: msg, .. } = status_of(&cases, "/weak-orphans/fixture") else {
            panic!("{lines}: {cases:#?}")
        };
        assert!(
            msg.contains("baseline proof") && msg.contains(reason),
            "{lines}: {msg}"
        );
    }
    // A listed case of a VM that did not complete is never a pass.
    let cases = run(
        &stream(&listed()),
        Exit::Panic {
            excerpt: "Kernel panic".into(),
        },
        true,
    );
    assert!(matches!(
        status_of(&cases, "/sizes/start-size"),
        Status::Fail { .. }
    ));
}

#[test]
fn a_kernel_lines_own_baseline_failures_are_required_on_that_line_only() {
    let judge_on = |kernel: &str, failing: &[(&str, &str)]| {
        let mut cell = facts("minimal", true);
        cell.id = cell.id.of_kernel(Kernel::parse(kernel).unwrap());
        let input = input(cell, Exit::PoweredOff, Mode::BaselineProof, INFO);
        judge(&input, &texts(&stream(failing))).cases
    };
    let with_filter_all = || {
        let mut l = listed();
        l.push(("ftrace", "filter-all"));
        l
    };
    // 7.3: it must fail with counted mismatches, like every listed case.
    let cases = judge_on("7.3", &with_filter_all());
    assert_eq!(*status_of(&cases, "/ftrace/filter-all"), Status::Pass);
    let cases = judge_on("7.3", &listed());
    let Status::Fail { detail: msg, .. } = status_of(&cases, "/ftrace/filter-all") else {
        panic!("{cases:#?}")
    };
    assert!(msg.contains("must fail"), "{msg}");
    // 6.12: it is a witness that must pass.
    let cases = judge_on("6.12", &listed());
    assert_eq!(*status_of(&cases, "/ftrace/filter-all"), Status::Pass);
    let cases = judge_on("6.12", &with_filter_all());
    assert!(matches!(
        status_of(&cases, "/ftrace/filter-all"),
        Status::Fail { .. }
    ));
}

#[test]
fn unlisted_witness_must_pass_with_a_count_on_the_baseline() {
    let s = stream_with(&listed(), |p, c| {
        ((p, c) == ("weak-orphans", "preceding-start")).then(|| {
            "    # ksh-checked: weak-orphans/preceding-start 0 of 0 mismatched\n    ok {n} preceding-start\n".to_string()
        })
    });
    let cases = run(&s, Exit::PoweredOff, true);
    let Status::Fail { detail: msg, .. } = status_of(&cases, "/weak-orphans/preceding-start")
    else {
        panic!()
    };
    assert!(msg.contains("0 items"), "{msg}");
}

#[test]
fn pass_without_a_count_and_undeclared_skip_fail() {
    let s = stream_with(&[], |p, c| match (p, c) {
        ("sizes", "start-size") => Some("    ok {n} start-size\n".into()),
        ("weak-kept", "size") => Some("    ok {n} size # SKIP empty list\n".into()),
        ("ftrace", "filter-all") => Some(
            "    # ksh-checked: ftrace/filter-all 0 of 0 mismatched\n    ok {n} filter-all\n"
                .into(),
        ),
        _ => None,
    });
    let cases = run(&s, Exit::PoweredOff, false);
    let fail = |suffix: &str, want: &str| {
        let Status::Fail { detail: msg, .. } = status_of(&cases, suffix) else {
            panic!("{suffix}: {cases:#?}")
        };
        assert!(msg.contains(want), "{suffix}: {msg}");
    };
    fail("/sizes/start-size", "without a count line");
    fail("/weak-kept/size", "APPLICABILITY");
    fail("/ftrace/filter-all", "0 items");
    // Declared not applicable (no CONFIG_KALLSYMS_SELFTEST): a skip.
    assert!(matches!(
        status_of(&cases, "/kallsyms-selftest/verdict"),
        Status::Skip(_)
    ));
}

#[test]
fn a_failed_build_fails_its_case_and_leaves_the_rest_not_run() {
    let mut i = clean_input();
    i.boot = None;
    i.build = BuildRecord::Failed {
        error: "make failed (exit status: 2)".into(),
        generators: Some(GeneratorsRecord::LinkStopped {
            shown: vec!["kallsyms: scripts/kallsyms-rs and scripts/kallsyms disagree".into()],
            build_log: PathBuf::from("/build/build.log"),
        }),
    };
    let cases = judge(&i, &texts("")).cases;
    assert_eq!(cases.len(), case_names(&facts("minimal", false).id).len());
    assert_eq!(
        status_of(&cases, "/build/kernel"),
        &Status::fail("make failed (exit status: 2)".into())
    );
    let Status::Fail { detail: m, .. } = status_of(&cases, "/build/generators-agree") else {
        panic!("{cases:#?}")
    };
    assert!(
        m.contains("the link stopped") && m.contains("/build/build.log"),
        "{m}"
    );
    for rest in [
        "/build/link-stable",
        "/boot/vm-completed",
        "/sizes/start-size",
    ] {
        assert_eq!(
            status_of(&cases, rest),
            &Status::NotRun("the kernel build failed".into()),
            "{rest}"
        );
    }
}

#[test]
fn a_harness_error_fails_the_vm_case_as_the_harness_s() {
    let mut i = clean_input();
    i.boot = Some(BootRecord::HarnessError("cannot read vmlinux".into()));
    let cases = judge(&i, &texts("")).cases;
    assert_eq!(status_of(&cases, "/build/kernel"), &Status::Pass);
    let vm = status_of(&cases, "/boot/vm-completed");
    assert_eq!(vm, &Status::harness_fail("cannot read vmlinux".into()));
    assert_eq!(
        vm.failure().unwrap(),
        "harness error before or during boot: cannot read vmlinux"
    );
    assert_eq!(
        status_of(&cases, "/boot/no-kernel-warnings"),
        &Status::NotRun("the harness could not boot this cell".into())
    );
}

#[test]
fn a_full_run_dir_is_named_and_the_guest_not_blamed() {
    let mut i = clean_input();
    if let Some(BootRecord::Ran(vm)) = &mut i.boot {
        vm.run_dir_free = Some(4096);
    }
    let cases = judge(&i, &texts("KTAP version 1\n")).cases;
    let Status::Fail { detail: m, .. } = status_of(&cases, "/boot/vm-completed") else {
        panic!("{cases:#?}")
    };
    assert!(
        m.contains("no space left on device in the run dir /runs/x (4096 bytes free)")
            && m.contains("(the run dir is full)"),
        "{m}"
    );
}

#[test]
fn the_build_checks_records_become_verdicts() {
    let compared = |passes: &[&str], problems: &[&str]| GeneratorsRecord::Compared {
        dir: PathBuf::from("/b"),
        passes: passes.iter().map(|s| s.to_string()).collect(),
        problems: problems.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(generators_verdict(&compared(&["p"], &[])), Status::Pass);
    assert!(matches!(generators_verdict(&compared(&[], &[])),
        Status::Fail { detail: m, .. } if m.contains("nothing was compared")));
    assert!(
        matches!(generators_verdict(&compared(&["p"], &["a differ", "b"])),
        Status::Fail { detail: m, .. } if m == "in /b: a differ; b")
    );
    // With the registry's reason.
    assert!(matches!(
        generators_verdict(&GeneratorsRecord::NotConfigured),
        Status::Skip(m) if m.contains("RUST_GENERATOR")
    ));
    let stable = |outcome| LinkStableRecord {
        dir: PathBuf::from("/b"),
        outcome,
    };
    assert_eq!(
        link_stable_verdict(&stable(Ok("pass: x".into()))),
        Status::Pass
    );
    assert_eq!(
        link_stable_verdict(&stable(Err("maps differ".into()))),
        Status::fail("maps differ\nbuild dir: /b".into())
    );
}

#[test]
fn the_console_is_judged_against_the_recorded_allow_list() {
    let mut i = clean_input();
    let console = format!("{QUIET_CONSOLE}[    1.0] foo: Failed to bar\n");
    let t = RunTexts {
        results: stream(&[]),
        console: Ok(console),
    };
    let Status::Fail { detail: m, .. } =
        status_of(&judge(&i, &t).cases, "/boot/no-kernel-warnings").clone()
    else {
        panic!()
    };
    assert!(m.contains("first: [    1.0] foo: Failed to bar"), "{m}");
    i.allow_list.text = Ok("Failed to bar # the test says so\n".into());
    assert_eq!(
        status_of(&judge(&i, &t).cases, "/boot/no-kernel-warnings"),
        &Status::Pass
    );
    let t = RunTexts {
        console: Err("cannot read the console log /x: gone".into()),
        ..t
    };
    assert_eq!(
        status_of(&judge(&i, &t).cases, "/boot/no-kernel-warnings"),
        &Status::fail("cannot read the console log /x: gone".into())
    );
}

#[test]
fn mutant_mode_judges_the_mutant_by_its_cases() {
    let rule = crate::kernel::mutants::MutantRule {
        name: "m".into(),
        cases: vec!["sizes/start-size".into()],
        build_mutant: false,
        crashes: None,
    };
    let i = input(
        facts("minimal", false),
        Exit::PoweredOff,
        Mode::Mutant(rule.clone()),
        INFO,
    );
    let caught = judge(&i, &texts(&stream(&[("sizes", "start-size")])));
    assert_eq!(
        caught.mutant,
        Some(Verdict::Caught(vec![
            "sizes/start-size (3 of 10 mismatched)".into()
        ]))
    );
    let missed = judge(&i, &texts(&stream(&[])));
    assert!(
        matches!(missed.mutant, Some(Verdict::Missed(_))),
        "{missed:?}"
    );
    assert_eq!(judge(&clean_input(), &texts(&stream(&[]))).mutant, None);
}

#[test]
fn cell_facts_keep_their_saved_form_and_refuse_an_unknown_cell() {
    let f = facts("minimal-llvm", true);
    let text = serde_json::to_string(&f).unwrap();
    assert_eq!(
        text,
        r#"{"kernel":"6.12","arch":"x86_64","config":"minimal-llvm","variant":"minimal","baseline":true,"user_tree":false,"explore_command":"cargo xtask run --arch x86_64"}"#
    );
    assert_eq!(serde_json::from_str::<CellFacts>(&text).unwrap(), f);
    // A record from before kernels were a dimension was of 6.12.
    let old = text.replace(r#""kernel":"6.12","#, "");
    assert_eq!(serde_json::from_str::<CellFacts>(&old).unwrap(), f);
    let mainline = text.replace(r#""kernel":"6.12""#, r#""kernel":"7.3""#);
    let parsed = serde_json::from_str::<CellFacts>(&mainline).unwrap();
    assert_eq!(parsed.id.kernel, crate::cell::Kernel::mainline());
    let unknown = text.replace(r#""kernel":"6.12""#, r#""kernel":"5.4""#);
    let e = serde_json::from_str::<CellFacts>(&unknown)
        .unwrap_err()
        .to_string();
    assert!(e.contains("5.4") && e.contains("supported"), "{e}");
    let riscv = text.replace("x86_64\",\"config", "riscv\",\"config");
    let e = serde_json::from_str::<CellFacts>(&riscv)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown architecture 'riscv'"), "{e}");
    let mismatch = text.replace("\"variant\":\"minimal\"", "\"variant\":\"kaslr\"");
    assert!(serde_json::from_str::<CellFacts>(&mismatch).is_err());
}

#[test]
fn kernel_baseline_failures_name_supported_lines() {
    for f in ksh_proto::KERNEL_BASELINE_FAILURES {
        for k in f.kernels {
            assert!(Kernel::parse(k).is_ok(), "{}/{}: {k}", f.probe, f.case);
        }
    }
}
