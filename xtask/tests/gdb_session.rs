//! `cargo xtask test --gdb` with a real gdb: the harness prints the gdb
//! command and the guest waits; gdb attaches, stops in the kernel's own
//! lookup (`kallsyms_lookup_size_offset`, called by the probes), shows a
//! backtrace, continues; the selected cases then pass and the harness
//! exits 0. Boots the x86_64 minimal kernel (built by the earlier steps of
//! .ci/run; built here otherwise). Host gdb only: the guest is x86_64.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
#[ignore = "boots a kernel in QEMU under gdb; .ci/run runs it"]
fn gdb_stops_in_a_lookup_and_the_run_passes() {
    let port = "1241";
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "test",
            "--arch",
            "x86_64",
            "--gdb",
            "--gdb-port",
            port,
            "--",
            "x86_64/minimal/nested-symbols/",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xtask test --gdb");
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = xtask.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l.clone());
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    // The gdb command line the harness printed.
    let mut gdb_line = None;
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(900)) {
        if l.trim_start().starts_with("gdb ") && l.contains(&format!("127.0.0.1:{port}")) {
            gdb_line = Some(l.trim().to_string());
            break;
        }
    }
    let Some(gdb_line) = gdb_line else {
        let _ = xtask.kill();
        panic!("no gdb command line printed:\n{}", reader.join().unwrap());
    };
    let vmlinux = gdb_line
        .split_whitespace()
        .nth(2)
        .expect("gdb -q VMLINUX ...")
        .to_string();
    let gdb = Command::new("timeout")
        .args(["300", "gdb", "-q", "-batch", &vmlinux])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args(["-ex", "break kallsyms_lookup_size_offset"])
        .args(["-ex", "continue", "-ex", "bt 2", "-ex", "delete"])
        .args(["-ex", "continue"])
        .output()
        .expect("running gdb");
    let gdb_out =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    let status = xtask.wait().unwrap();
    let log = reader.join().unwrap();
    let mut stdout = String::new();
    use std::io::Read as _;
    xtask
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        gdb_out
            .lines()
            .any(|l| l.contains("Breakpoint 1,") && l.contains("kallsyms_lookup_size_offset")),
        "gdb did not stop in the lookup:\n{gdb_out}"
    );
    assert!(
        status.success(),
        "xtask test --gdb exited {status}\n{stdout}\n{log}"
    );
    assert!(stdout.contains("2 passed; 0 failed"), "{stdout}");
}
