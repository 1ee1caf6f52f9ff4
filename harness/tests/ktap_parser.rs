//! The KTAP parser (`harness::results::ktap`) against streams kept as
//! files in `ktap-data/` (the KTAP spec's example, kunit samples, a
//! guest's stream with kernel noise, truncated streams), as kunit.py keeps
//! its `test_data/`; one-line edge cases stay inline.

use harness::results::ktap::*;

const DONE: &str = "# ksh-complete:";

fn p(s: &str) -> Report {
    parse(s, DONE)
}

fn messages(r: &Report) -> Vec<String> {
    r.errors
        .iter()
        .map(|e| format!("{}: {}", e.line_no, e.message))
        .collect()
}

/// `s` parsed; its errors must be exactly `want` (`LINE: message`).
fn p_errors(s: &str, want: &[&str]) -> Report {
    let r = p(s);
    assert_eq!(messages(&r), want);
    r
}

fn assert_clean(r: &Report) {
    assert!(r.errors.is_empty(), "unexpected errors: {:#?}", r.errors);
}

#[test]
fn flat_stream_with_completion() {
    let r = p("KTAP version 1\n1..2\nok 1 first\nnot ok 2 second\n# ksh-complete: 2 tests\n");
    assert_clean(&r);
    assert!(r.is_clean());
    assert_eq!(r.version.as_deref(), Some("KTAP version 1"));
    assert_eq!(r.plan, Some(2));
    assert_eq!(r.completion.as_deref(), Some("# ksh-complete: 2 tests"));
    assert_eq!(r.tests.len(), 2);
    assert_eq!(
        (
            r.tests[0].number,
            r.tests[0].name.as_str(),
            r.tests[0].outcome
        ),
        (1, "first", Outcome::Pass)
    );
    assert_eq!(
        (
            r.tests[1].number,
            r.tests[1].name.as_str(),
            r.tests[1].outcome
        ),
        (2, "second", Outcome::Fail)
    );
    assert_eq!(r.tests[1].line_no, 4);
}

#[test]
fn missing_completion_record() {
    let r = p("KTAP version 1\n1..1\nok 1 a\n");
    assert_clean(&r);
    assert_eq!(r.completion, None);
    assert!(!r.is_clean());
    // An empty prefix never matches (it would match every line).
    let r = parse("KTAP version 1\n1..1\nok 1 a\n", "");
    assert_eq!(r.completion, None);
    assert_eq!(r.tests.len(), 1);
}

#[test]
fn empty_and_headerless_streams_are_errors() {
    let r = p_errors("", &["0: empty result stream"]);
    assert!(r.tests.is_empty());
    let r = p_errors(
        "[    0.1] Kernel panic - not syncing\n",
        &["0: no KTAP version line"],
    );
    assert_eq!(r.diagnostics, ["[    0.1] Kernel panic - not syncing"]);
}

#[test]
fn interleaved_kernel_noise() {
    let s = include_str!("ktap-data/interleaved-kernel-noise.ktap");
    let r = p(s);
    assert_clean(&r);
    assert_eq!(r.tests.len(), 2);
    assert_eq!(
        r.tests[0].diagnostics,
        [
            "[    0.000000] Linux version 6.12.0",
            "random junk before the header",
            "[    1.234567] virtio_blk virtio1: [vda] 2048 512-byte logical blocks",
            "",
            "# checking something"
        ]
    );
    assert_eq!(
        r.tests[1].diagnostics,
        ["[    1.3] ok", "okay this is prose"]
    );
    assert_eq!(
        r.diagnostics,
        [
            "[    1.4] trailing kernel message",
            "[    1.5] reboot: Power down"
        ]
    );
    assert!(r.completion.is_some());
}

#[test]
fn truncated_stream() {
    // The guest died inside a subtest: the plan says 3, the nested
    // block has no result line, and there is no completion record.
    let s = include_str!("ktap-data/truncated-stream.ktap");
    let r = p_errors(
        s,
        &[
            "2: truncated: plan of 3 but only 2 results",
            "4: subtest \"probe\" has no result line (stream truncated)",
            "6: truncated: plan of 2 but only 1 results",
        ],
    );
    assert_eq!(r.completion, None);
    let probe = r.find(&["probe"]).expect("synthesised result");
    assert_eq!(probe.outcome, Outcome::Fail);
    assert!(!probe.ok);
    assert_eq!(probe.line_no, 0);
    assert_eq!(probe.number, 2);
    assert_eq!(probe.plan, Some(2));
    assert_eq!(probe.diagnostics, ["# about to crash"]);
    assert_eq!(r.find(&["probe", "case_a"]).unwrap().outcome, Outcome::Pass);
    assert!(r.find(&["probe", "case_b"]).is_none());
}

#[test]
fn truncated_mid_line_is_an_error() {
    let r = p_errors(
        "KTAP version 1\n1..2\nok 1 a\nnot o",
        &["2: truncated: plan of 2 but only 1 results"],
    );
    assert_eq!(r.diagnostics, ["not o"]);
    p_errors(
        "KTAP version 1\n1..2\nok 1 a\nok",
        &[
            "2: truncated: plan of 2 but only 1 results",
            "4: result line without a test number",
        ],
    );
}

#[test]
fn nested_two_levels_ktap_spec_example() {
    // From Documentation/dev-tools/ktap.rst, "Example KTAP output".
    let s = include_str!("ktap-data/nested-two-levels-ktap-spec-example.ktap");
    let r = p(s);
    assert_clean(&r);
    assert_eq!(r.tests.len(), 1);
    let main = &r.tests[0];
    assert_eq!(
        (main.name.as_str(), main.outcome, main.plan),
        ("main_test", Outcome::Fail, Some(3))
    );
    let names: Vec<_> = main
        .subtests
        .iter()
        .map(|t| (t.name.as_str(), t.outcome))
        .collect();
    assert_eq!(
        names,
        [
            ("example_test_1", Outcome::Pass),
            ("example_test_2", Outcome::Pass),
            ("example_test_3", Outcome::Fail)
        ]
    );
    let t1 = r.find(&["main_test", "example_test_1", "test_1"]).unwrap();
    assert_eq!(t1.diagnostics, ["# test_1: initializing test_1"]);
    let skipped = r.find(&["main_test", "example_test_2", "test_1"]).unwrap();
    assert_eq!(skipped.outcome, Outcome::Skip);
    assert_eq!(skipped.directive_reason.as_deref(), Some("test_1 skipped"));
    let failed = r.find(&["main_test", "example_test_3", "test_2"]).unwrap();
    assert_eq!(failed.outcome, Outcome::Fail);
    assert_eq!(failed.diagnostics, ["# test_2: FAIL"]);
    assert!(r
        .find(&["main_test", "example_test_3"])
        .unwrap()
        .diagnostics
        .is_empty());
}

#[test]
fn parent_diagnostic_after_subtests() {
    // ktap.rst: "# example failed" is at the parent's indentation and
    // belongs to the parent's result, not the last subtest's block.
    let s = include_str!("ktap-data/parent-diagnostic-after-subtests.ktap");
    let r = p(s);
    assert_clean(&r);
    let ex = r.find(&["example"]).unwrap();
    assert_eq!(ex.diagnostics, ["stray indented noise", "# example failed"]);
    assert!(ex.subtests[1].diagnostics.is_empty());
}

#[test]
fn directives() {
    let s = include_str!("ktap-data/directives.ktap");
    let r = p(s);
    assert_clean(&r);
    let got: Vec<_> = r
        .tests
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.outcome,
                t.directive.as_deref(),
                t.directive_reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a", Outcome::Skip, Some("SKIP"), Some("no such device")),
            ("b", Outcome::Skip, Some("SKIP"), None),
            ("c", Outcome::Xfail, Some("XFAIL"), Some("known bug")),
            ("d", Outcome::Timeout, Some("TIMEOUT"), Some("30 seconds")),
            ("e", Outcome::Todo, Some("TODO"), Some("not done")),
            ("f", Outcome::Pass, None, Some("rcode=0")),
            ("g", Outcome::Fail, Some("ERROR"), Some("could not open")),
            ("h", Outcome::Skip, Some("SKIP"), Some("reason with # hash")),
            ("i", Outcome::Pass, None, Some("SKIPPED is not a directive")),
        ]
    );
    assert!(!r.tests[1].ok);
}

#[test]
fn diagnostics_attach_to_the_following_case() {
    let s = include_str!("ktap-data/diagnostics-attach-to-the-following-case.ktap");
    let r = p(s);
    assert_clean(&r);
    assert_eq!(r.tests[0].diagnostics, ["# before a"]);
    assert_eq!(
        r.tests[1].diagnostics,
        ["# before b, line 1", "# before b, line 2"]
    );
    assert!(r.tests[2].diagnostics.is_empty());
    assert_eq!(r.diagnostics, ["# after everything"]);
}

#[test]
fn out_of_order_numbers() {
    let r = p_errors(
        "KTAP version 1\n1..3\nok 1 a\nok 3 c\nok 2 b\n",
        &[
            "4: test number 3 out of sequence (expected 2)",
            "5: test number 2 out of sequence (expected 4)",
        ],
    );
    // Still recorded, so the failure report can show them.
    assert_eq!(r.tests.len(), 3);
    p_errors(
        "KTAP version 1\n1..1\nok 0 zero\n",
        &["3: test number 0 out of sequence (expected 1)"],
    );
}

#[test]
fn plan_mismatches() {
    p_errors(
        "KTAP version 1\n1..1\nok 1 a\nok 2 b\n",
        &["2: plan of 1 but 2 results"],
    );
    p_errors(
        "KTAP version 1\n1..2\n1..2\nok 1 a\nok 2 b\n",
        &["3: second plan in one block (first on line 2)"],
    );
    // A trailing plan (TAP style) is fine if it matches.
    let r = p("KTAP version 1\nok 1 a\nok 2 b\n1..2\n");
    assert_clean(&r);
    assert_eq!(r.plan, Some(2));
    // No plan at all is allowed (the spec only recommends one).
    let r = p("KTAP version 1\nok 1 a\n");
    assert_clean(&r);
    // "1..0" plans an empty run.
    let r = p("KTAP version 1\n1..0 # SKIP nothing to do\n");
    assert_clean(&r);
    assert_eq!(r.plan, Some(0));
}

#[test]
fn unparseable_result_lines() {
    let r = p_errors(
        "KTAP version 1\n1..2\nok one\nnot ok 1x\nok 1 a\nok 2 b\nok 99999999999999999999999 c\n",
        &[
            "3: result line without a test number",
            "4: unparseable text after the test number",
            "7: test number out of range",
        ],
    );
    assert_eq!(r.tests[0].diagnostics, ["ok one", "not ok 1x"]);
}

#[test]
fn crlf_line_endings() {
    let s = "KTAP version 1\r\n1..2\r\n    KTAP version 1\r\n    # Subtest: s\r\n    1..1\r\n    \
                 # diag\r\n    ok 1 x # SKIP why\r\nok 1 s\r\nok 2 t\r\n# ksh-complete: ok\r\n";
    let r = p(s);
    assert_clean(&r);
    assert_eq!(r.version.as_deref(), Some("KTAP version 1"));
    let x = r.find(&["s", "x"]).unwrap();
    assert_eq!(x.outcome, Outcome::Skip);
    assert_eq!(x.directive_reason.as_deref(), Some("why"));
    assert_eq!(x.diagnostics, ["# diag"]);
    assert_eq!(r.find(&["t"]).unwrap().name, "t");
    assert_eq!(r.completion.as_deref(), Some("# ksh-complete: ok"));
}

#[test]
fn invalid_utf8_bytes() {
    let r = parse_bytes(
        b"KTAP version 1\n1..1\n\xff\xfe junk\nok 1 a\n# ksh-complete:\n",
        DONE,
    );
    assert!(r.is_clean(), "{:?}", r.errors);
    assert_eq!(r.tests[0].diagnostics, ["\u{fffd}\u{fffd} junk"]);
}

#[test]
fn modern_kunit_sample() {
    // KUnit's output since 6.x: four-space indentation, a version line
    // before `# Subtest:`, and the `# module:` attribute line.
    let s = include_str!("ktap-data/modern-kunit-sample.ktap");
    let r = p(s);
    assert_clean(&r);
    let ex = r.find(&["example"]).unwrap();
    assert_eq!(ex.plan, Some(3));
    assert_eq!(
        ex.diagnostics,
        [
            "# example: pass:2 fail:0 skip:1 total:3",
            "# Totals: pass:3 fail:0 skip:2 total:5"
        ]
    );
    let simple = r.find(&["example", "example_simple_test"]).unwrap();
    assert_eq!(
        simple.diagnostics,
        [
            "# module: kunit_example_test",
            "# example_simple_test: initializing"
        ]
    );
    let params = r.find(&["example", "example_params_test"]).unwrap();
    assert_eq!(params.plan, None);
    assert_eq!(
        params.diagnostics,
        ["# example_params_test: pass:1 fail:0 skip:1 total:2"]
    );
    assert_eq!(params.subtests[1].outcome, Outcome::Skip);
    assert_eq!(
        ex.find(&["example_skip_test"]).unwrap().outcome,
        Outcome::Skip
    );
}

#[test]
fn old_kunit_sample_with_tabs_and_noise() {
    // tools/testing/kunit/test_data/test_is_test_passed-all_passed_nested.log
    // (TAP version 14, tab indentation, `- ` before names, noise lines).
    let s = "TAP version 14
1..2
\t# Subtest: sysctl_test
\t1..4
\t# sysctl_test_dointvec_null_tbl_data: sysctl_test_dointvec_null_tbl_data passed
\tok 1 - sysctl_test_dointvec_null_tbl_data
\t\t# Subtest: example
\t\t1..2
\tinit_suite
\t\t# example_simple_test: initializing
\t\t# example_simple_test: example_simple_test passed
\t\tok 1 - example_simple_test
\t\t# example_mock_test: initializing
\t\t# example_mock_test: example_mock_test passed
\t\tok 2 - example_mock_test
\tkunit example: all tests passed
\tok 2 - example
\t# sysctl_test_dointvec_table_len_is_zero: sysctl_test_dointvec_table_len_is_zero passed
\tok 3 - sysctl_test_dointvec_table_len_is_zero
\t# sysctl_test_dointvec_table_read_but_position_set: sysctl_test_dointvec_table_read_but_position_set passed
\tok 4 - sysctl_test_dointvec_table_read_but_position_set
kunit sysctl_test: all tests passed
ok 1 - sysctl_test
\t# Subtest: example
\t1..2
init_suite
\t# example_simple_test: initializing
\t# example_simple_test: example_simple_test passed
\tok 1 - example_simple_test
\t# example_mock_test: initializing
\t# example_mock_test: example_mock_test passed
\tok 2 - example_mock_test
kunit example: all tests passed
ok 2 - example
";
    let r = p(s);
    assert_clean(&r);
    assert_eq!(r.version.as_deref(), Some("TAP version 14"));
    let names: Vec<_> = r.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sysctl_test", "example"]);
    let inner = r.find(&["sysctl_test", "example"]).unwrap();
    assert_eq!(inner.diagnostics, ["kunit example: all tests passed"]);
    let simple = inner.find(&["example_simple_test"]).unwrap();
    assert_eq!(
        simple.diagnostics,
        [
            "init_suite",
            "# example_simple_test: initializing",
            "# example_simple_test: example_simple_test passed"
        ]
    );
    assert_eq!(
        r.find(&["sysctl_test"]).unwrap().diagnostics,
        ["kunit sysctl_test: all tests passed"]
    );
    assert_eq!(
        r.find(&["example", "example_mock_test"]).unwrap().outcome,
        Outcome::Pass
    );
    assert!(r
        .tests
        .iter()
        .all(|t| t.outcome == Outcome::Pass && t.subtests.len() == t.plan.unwrap()));
}

#[test]
fn subtest_without_result_line_then_sibling() {
    // Block "a" ends without "ok 1 a"; block "b" starts at the same
    // indentation. "a" must be reported, failed, never dropped.
    let s = include_str!("ktap-data/subtest-without-result-line-then-sibling.ktap");
    let r = p_errors(
        s,
        &["3: subtest \"a\" has no result line before the next nested block"],
    );
    let a = r.find(&["a"]).unwrap();
    assert_eq!((a.number, a.outcome, a.line_no), (1, Outcome::Fail, 0));
    assert_eq!(a.find(&["x"]).unwrap().outcome, Outcome::Pass);
    assert_eq!(r.find(&["b", "y"]).unwrap().outcome, Outcome::Pass);
}

#[test]
fn structural_contradictions() {
    // A parent reporting ok over a failed subtest.
    p_errors(
        "KTAP version 1\n1..1\n  1..1\n  not ok 1 x\nok 1 p\n",
        &["5: reported ok but subtest 1 \"x\" has outcome fail"],
    );
    // A result name that contradicts its `# Subtest:` header.
    p_errors(
        "KTAP version 1\n1..1\n  # Subtest: p\n  1..1\n  ok 1 x\nok 1 q\n",
        &["6: result name does not match its subtest header \"p\""],
    );
    // The header names the result if the result line has no name.
    let r = p("KTAP version 1\n1..1\n  # Subtest: p\n  1..1\n  ok 1 x\nok 1\n");
    assert_clean(&r);
    assert_eq!(r.tests[0].name, "p");
    // A restarted stream.
    p_errors(
        "KTAP version 1\n1..1\nok 1 a\nKTAP version 1\n",
        &["4: version line in the middle of the top level (output restarted?)"],
    );
    // Results after the completion record, and a second record.
    let r = p_errors(
        "KTAP version 1\n1..1\nok 1 a\n# ksh-complete:\nok 2 b\n# ksh-complete: again\n",
        &[
            "5: KTAP output after the completion record",
            "6: second completion record",
        ],
    );
    assert_eq!(r.tests.len(), 1);
}

#[test]
fn skipped_indentation_level_closes_both_blocks() {
    // Two nested levels end at once: the middle block ("mid") never got
    // its result line.
    let s = include_str!("ktap-data/skipped-indentation-level-closes-both-blocks.ktap");
    let r = p_errors(
        s,
        &[
            "5: subtest \"leaf\" has no result line",
            "8: result name does not match its subtest header \"mid\"",
            "8: reported ok but subtest 1 \"leaf\" has outcome fail",
        ],
    );
    let leaf = r.find(&["top", "leaf"]).unwrap();
    assert_eq!(leaf.outcome, Outcome::Fail);
    assert_eq!(leaf.find(&["x"]).unwrap().outcome, Outcome::Pass);
}
