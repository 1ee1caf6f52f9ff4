//! `/init` of the test guest, and the probes it runs.
//!
//! As PID 1 it mounts the pseudo filesystems, finds the results port (a
//! virtio-serial port, never the console), runs every probe of
//! [`ksh_proto::PROBES`] in its own child process (`/init --probe NAME`) under
//! the probe's timeout, forwards each probe's KTAP subtest, writes the
//! completion record and powers off. A probe that crashes or hangs costs its
//! own cases, not the run.

mod alloc;
mod expect;
mod kaslr;
mod ktap;
mod probe_module;
mod probes;
mod proc_kallsyms;
mod shell;
mod sys;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ksh_proto::{ProbeSpec, PROBES};

#[global_allocator]
static ALLOCATOR: alloc::Bump = alloc::Bump::new();

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--probe" {
        // Child mode: run one probe, KTAP cases on stdout.
        let Some(spec) = ksh_proto::probe(&args[2]) else {
            eprintln!("ksh-init: unknown probe {}", args[2]);
            std::process::exit(2);
        };
        let mut out = ktap::CaseWriter::new(std::io::stdout().lock(), spec).with_case_times();
        probes::run(spec, &mut out);
        out.finish();
        return;
    }
    // The interactive tools of `cargo xtask run` (shell scripts on PATH call
    // them).
    match args.get(1).map(String::as_str) {
        Some("--list-probes") => return shell::list_probes(),
        Some("--lookup") => std::process::exit(shell::lookup(&args[2..])),
        _ => {}
    }
    init();
}

/// PID 1: set up, run every probe, report, power off.
fn init() {
    let mount_errors = sys::mount_pseudo_filesystems();
    for e in &mount_errors {
        eprintln!("ksh-init: {e}");
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    sys::configure_end(&cmdline);
    if cmdline
        .split_whitespace()
        .any(|w| w == ksh_proto::NULL_BOOT_PARAM)
    {
        null_boot();
    }
    // The probe module answers kallsyms lookups for the probes; a failure
    // is recorded for them to quote (they fail, the other probes run).
    // `ksh_probe.NAME=VALUE` words of the command line are the module's
    // parameters (modprobe's job on other systems; the fault suite uses
    // them to make the module panic or hang).
    let module_params: Vec<&str> = cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(&format!("{}.", ksh_proto::MODULE_NAME)))
        .collect();
    let module_status = match sys::load_module(ksh_proto::MODULE_PATH, &module_params.join(" ")) {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            eprintln!("ksh-init: {e}");
            e
        }
    };
    if let Err(e) = std::fs::write(ksh_proto::MODULE_LOAD_STATUS, format!("{module_status}\n")) {
        eprintln!("ksh-init: writing {}: {e}", ksh_proto::MODULE_LOAD_STATUS);
    }
    // For gdb's add-symbol-file (`--gdb`): where the module's code landed.
    if let Some(a) = sys::module_text_address(ksh_proto::MODULE_NAME) {
        println!("{}{a:x}", ksh_proto::MODULE_TEXT_LINE);
    }
    if cmdline
        .split_whitespace()
        .any(|w| w == ksh_proto::SHELL_PARAM)
    {
        shell::shell_session(&cmdline, &module_status);
    }
    let mut port = match sys::open_results_port(ksh_proto::RESULTS_PORT_NAME) {
        Ok(p) => p,
        Err(e) => {
            // No channel: say so on the console; the host sees no completion
            // record and reports the run as crashed, with this line in the log.
            eprintln!("ksh-init: cannot open the results port: {e}");
            sys::power_off();
        }
    };
    let started = Instant::now();
    let mut report = String::new();
    report.push_str("KTAP version 1\n");
    report.push_str(&format!("1..{}\n", PROBES.len()));
    report.push_str(&probes::snapshot_proc_kallsyms());
    let _ = port.write_all(report.as_bytes());
    let only: Option<Vec<&str>> = ksh_proto::cmdline_value(&cmdline, ksh_proto::ONLY_PROBES_PARAM)
        .map(|v| v.split(',').collect());
    // A timing probe runs alone only when its figures are used: a plain
    // test run just checks its path (see `ProbeSpec::runs_alone`).
    let timed = ksh_proto::cmdline_value(&cmdline, ksh_proto::BENCH_ROUNDS_PARAM).is_some();
    run_all_probes(only.as_deref(), timed, |block| {
        let _ = port.write_all(block.as_bytes());
        let _ = port.flush();
    });
    let tail = format!(
        "# ksh: probes took {} ms inside the guest\n{}\n",
        started.elapsed().as_millis(),
        ksh_proto::completion_record(PROBES.len())
    );
    let _ = port.write_all(tail.as_bytes());
    let _ = port.flush();
    let _ = port.sync_all();
    drop(port);
    sys::power_off();
}

/// The bench's null boot: no module, no probe; an empty report and the
/// completion record, then power off.
fn null_boot() -> ! {
    if let Ok(mut port) = sys::open_results_port(ksh_proto::RESULTS_PORT_NAME) {
        let _ = port.write_all(
            format!(
                "KTAP version 1\n1..0\n{}\n",
                ksh_proto::completion_record(0)
            )
            .as_bytes(),
        );
        let _ = port.flush();
        let _ = port.sync_all();
    }
    sys::power_off();
}

/// Runs every probe, as many at once as the guest has CPUs (each probe is
/// its own process, so they share nothing but the kernel), and hands their
/// KTAP blocks to `emit` in registry order as soon as each is complete.
/// They start longest first ([`start_order`]); with `timed` (the bench),
/// probes marked `runs_alone` wait for the others and run by themselves,
/// else they start last and share the guest's CPUs like the rest. With
/// `only` (the bench's `ksh.only=`), the other probes are reported as not
/// run.
fn run_all_probes(only: Option<&[&str]>, timed: bool, mut emit: impl FnMut(&str)) {
    let lanes = std::thread::available_parallelism().map_or(1, |n| n.get());
    let order = start_order();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut blocks: Vec<Option<String>> = vec![None; PROBES.len()];
    let (mut next_start, mut next_emit, mut running) = (0usize, 0usize, 0usize);
    let mut alone_running = false;
    loop {
        while next_start < PROBES.len() && running < lanes && !alone_running {
            let i = order[next_start];
            let spec = &PROBES[i];
            let alone = spec.runs_alone && timed;
            if alone && running > 0 {
                break;
            }
            if only.is_some_and(|o| !o.contains(&spec.name)) {
                let why = format!("not run: not named by {}=", ksh_proto::ONLY_PROBES_PARAM);
                let _ = done_tx.send((i, not_run_block(i + 1, spec, &why)));
                running += 1;
                next_start += 1;
                continue;
            }
            let tx = done_tx.clone();
            std::thread::spawn(move || {
                // A panic here must still free the lane and report the probe.
                let block = std::panic::catch_unwind(|| run_probe_child(i + 1, &PROBES[i]))
                    .unwrap_or_else(|_| {
                        not_run_block(i + 1, &PROBES[i], "the guest's probe runner panicked")
                    });
                let _ = tx.send((i, block));
            });
            alone_running = alone;
            running += 1;
            next_start += 1;
        }
        if running == 0 {
            break;
        }
        let Ok((i, block)) = done_rx.recv() else {
            break;
        };
        running -= 1;
        alone_running &= !(PROBES[i].runs_alone && timed);
        blocks[i] = Some(block);
        while let Some(Some(b)) = blocks.get(next_emit) {
            emit(b);
            next_emit += 1;
        }
    }
}

/// The probes that take longest (the `# PROBE: N ms` lines of a run's
/// results.ktap: on x86_64/minimal under TCG about 1 s, 0.9 s, 0.45 s and
/// 0.3 s; the rest 0.1-0.3 s each), started first. In registry order the
/// two longest started late and one lane ran on alone for ~0.3 s after
/// the other had finished; longest-first lets the lanes end together.
const LONGEST_FIRST: &[&str] = &["kallsyms-sizes-file", "ftrace", "sizes", "proc-kallsyms"];

/// The order probes start in: [`LONGEST_FIRST`], then the rest in
/// registry order, with `runs_alone` probes last. Results are still
/// reported in registry order.
fn start_order() -> Vec<usize> {
    let mut order: Vec<usize> = (0..PROBES.len()).collect();
    order.sort_by_key(|&i| {
        let p = &PROBES[i];
        let rank = LONGEST_FIRST
            .iter()
            .position(|n| *n == p.name)
            .unwrap_or(LONGEST_FIRST.len());
        (p.runs_alone, rank, i)
    });
    order
}

/// The KTAP block of a probe that never ran: every case failed with `why`.
fn not_run_block(number: usize, spec: &ProbeSpec, why: &str) -> String {
    let mut block = format!(
        "    KTAP version 1\n    # Subtest: {}\n    1..{}\n",
        spec.name,
        spec.cases.len()
    );
    for (j, case) in spec.cases.iter().enumerate() {
        block.push_str(&format!("    # {why}\n    not ok {} {case}\n", j + 1));
    }
    block.push_str(&format!("not ok {number} {}\n", spec.name));
    block
}

/// Runs one probe in a child process with its timeout; returns its KTAP
/// subtest block (indented cases plus the probe's own result line).
fn run_probe_child(number: usize, spec: &ProbeSpec) -> String {
    let mut block = format!(
        "    KTAP version 1\n    # Subtest: {}\n    1..{}\n",
        spec.name,
        spec.cases.len()
    );
    let started = Instant::now();
    let child = Command::new("/proc/self/exe")
        .args(["--probe", spec.name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return not_run_block(
                number,
                spec,
                &format!("cannot start the probe process: {e}"),
            )
        }
    };
    // Read stdout on a thread so a chatty probe cannot block on a full pipe.
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.push(l);
        }
        lines
    });
    let stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).take(8192).read_to_string(&mut s);
        s
    });
    let scale = std::fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| ksh_proto::cmdline_number(&c, ksh_proto::TIMEOUT_SCALE_PARAM))
        .unwrap_or(1)
        .clamp(1, 100);
    let limit = spec.timeout(probes::symbols_in_build()) * scale as u32;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let lines = reader.join().unwrap_or_default();
    let stderr_text = err_reader.join().unwrap_or_default();
    let mut reported = 0usize;
    let mut all_ok = true;
    for l in &lines {
        if let Some(r) = ktap::parse_case_line(l) {
            reported = reported.max(r.number);
            all_ok &= r.ok;
        }
        block.push_str("    ");
        block.push_str(l);
        block.push('\n');
    }
    // Cases the probe never reported: it crashed or was killed.
    for (j, case) in spec.cases.iter().enumerate().skip(reported) {
        all_ok = false;
        if timed_out {
            block.push_str(&format!(
                "    not ok {} {case} # TIMEOUT probe exceeded {} s\n",
                j + 1,
                limit.as_secs()
            ));
        } else {
            let how = status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            block.push_str(&format!(
                "    # probe process ended ({how}) before reporting this case\n"
            ));
            for l in stderr_text.lines().take(10) {
                block.push_str(&format!("    # stderr: {l}\n"));
            }
            block.push_str(&format!("    not ok {} {case}\n", j + 1));
        }
    }
    block.push_str(&format!(
        "# {}: {} ms\n{} {number} {}\n",
        spec.name,
        started.elapsed().as_millis(),
        if all_ok { "ok" } else { "not ok" },
        spec.name
    ));
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_order_is_a_permutation_longest_first_alone_last() {
        let order = start_order();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..PROBES.len()).collect::<Vec<_>>());
        for (k, name) in LONGEST_FIRST.iter().enumerate() {
            assert_eq!(PROBES[order[k]].name, *name, "{name} is not a probe");
        }
        let first_alone = order.iter().position(|&i| PROBES[i].runs_alone);
        if let Some(f) = first_alone {
            assert!(order[f..].iter().all(|&i| PROBES[i].runs_alone));
        }
    }
}
