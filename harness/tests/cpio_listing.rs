//! Checks `harness::payload::cpio` against the real GNU `cpio` tool: the archive we
//! hand the kernel must be readable by an independent implementation, not
//! just by our own unit-test reader. Listing (`cpio -itv`) checks names,
//! types, modes, owners and the device numbers; extraction (`cpio -idm`)
//! checks contents, modes, mtimes and symlink targets. A missing tool is a
//! failure, never a skip.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use harness::payload::cpio::CpioBuilder;

/// Runs `prog args` with `stdin` piped in, in `dir`, with a fixed time
/// zone and locale so the listing's date and layout are predictable.
fn run(prog: &str, args: &[&str], stdin: &[u8], dir: &Path) -> Output {
    let mut child = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{prog}` ({e}): install it: apt-get install {prog}")
        });
    // Feed stdin from a thread so a tool that writes a lot before reading
    // everything cannot deadlock us.
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "`{prog} {}` failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Fails (not skips) the test if `cpio` is not installed.
fn require_cpio() {
    match Command::new("cpio").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("`cpio` is not installed; install it: apt-get install cpio"),
    }
}

const SCRIPT: &[u8] = b"#!/bin/sh\necho hello\n";

/// Sizes 0..=5 and a binary blob exercise every padding case.
fn build() -> Vec<u8> {
    let mut c = CpioBuilder::new();
    c.add_dir("/ksh", 0o700).unwrap();
    c.add_file("/init", 0o755, SCRIPT.to_vec()).unwrap();
    c.add_char_dev("/dev/console", 0o600, 5, 1).unwrap();
    c.add_symlink("/bin/sh", "busybox").unwrap();
    c.add_file("/bin/busybox", 0o755, b"not really busybox".to_vec())
        .unwrap();
    for n in 0..=5 {
        c.add_file(&format!("/ksh/expect/f{n}"), 0o644, vec![b'a' + n as u8; n])
            .unwrap();
    }
    c.add_file(
        "ksh/expect/blob.bin",
        0o600,
        (0..=255u8).collect::<Vec<_>>(),
    )
    .unwrap();
    c.add_file("/tmp/empty", 0o444, Vec::new()).unwrap();
    c.finish().unwrap()
}

const NAMES: &[&str] = &[
    "bin",
    "bin/busybox",
    "bin/sh",
    "dev",
    "dev/console",
    "init",
    "ksh",
    "ksh/expect",
    "ksh/expect/blob.bin",
    "ksh/expect/f0",
    "ksh/expect/f1",
    "ksh/expect/f2",
    "ksh/expect/f3",
    "ksh/expect/f4",
    "ksh/expect/f5",
    "tmp",
    "tmp/empty",
];

#[test]
fn listing_matches() {
    require_cpio();
    let archive = build();
    let tmp = tempfile::tempdir().unwrap();

    let names = run("cpio", &["-it", "--quiet"], &archive, tmp.path());
    let names = String::from_utf8(names.stdout).unwrap();
    assert_eq!(names.lines().collect::<Vec<_>>(), NAMES);

    // e.g. "crw-------   1 root     root       5,   1 Jan  1  1970 dev/console"
    let out = run("cpio", &["-itv", "--quiet"], &archive, tmp.path());
    let listing = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), NAMES.len(), "{listing}");
    let row = |name: &str| -> &Vec<&str> {
        rows.iter()
            .find(|r| {
                r[r.len() - 1] == name
                    || (r.len() > 2 && r[r.len() - 3] == name && r[r.len() - 2] == "->")
            })
            .unwrap_or_else(|| panic!("{name} not listed:\n{listing}"))
    };
    for r in &rows {
        assert_eq!((r[2], r[3]), ("root", "root"), "owner: {r:?}");
        assert!(
            r.windows(3).any(|w| w == ["Jan", "1", "1970"]),
            "mtime 0: {r:?}"
        );
    }
    let mode_nlink = |name: &str| (row(name)[0], row(name)[1]);
    assert_eq!(mode_nlink("bin"), ("drwxr-xr-x", "2"), "implicit parent");
    assert_eq!(mode_nlink("ksh"), ("drwx------", "2"));
    assert_eq!(mode_nlink("ksh/expect"), ("drwxr-xr-x", "2"));
    assert_eq!(mode_nlink("init"), ("-rwxr-xr-x", "1"));
    assert_eq!(mode_nlink("ksh/expect/blob.bin"), ("-rw-------", "1"));
    assert_eq!(mode_nlink("tmp/empty"), ("-r--r--r--", "1"));
    assert_eq!(row("init")[4], SCRIPT.len().to_string());
    assert_eq!(row("ksh/expect/blob.bin")[4], "256");
    assert_eq!(mode_nlink("bin/sh"), ("lrwxrwxrwx", "1"));
    assert_eq!(
        &row("bin/sh")[row("bin/sh").len() - 3..],
        ["bin/sh", "->", "busybox"]
    );
    let console = row("dev/console");
    assert_eq!(
        &console[..6],
        ["crw-------", "1", "root", "root", "5,", "1"],
        "{listing}"
    );
}

#[test]
fn extraction_matches() {
    require_cpio();
    let archive = build();
    let tmp = tempfile::tempdir().unwrap();
    // The device node is left out: creating it needs CAP_MKNOD, and the
    // listing test already checks its header.
    run(
        "cpio",
        &[
            "-idm",
            "--quiet",
            "--no-absolute-filenames",
            "-f",
            "dev/console",
        ],
        &archive,
        tmp.path(),
    );
    let root = tmp.path();

    let mode = |p: &str| {
        std::fs::symlink_metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(std::fs::read(root.join("init")).unwrap(), SCRIPT);
    assert_eq!(mode("init"), 0o755);
    for n in 0..=5u8 {
        let data = std::fs::read(root.join(format!("ksh/expect/f{n}"))).unwrap();
        assert_eq!(data, vec![b'a' + n; n as usize], "f{n}");
    }
    assert_eq!(
        std::fs::read(root.join("ksh/expect/blob.bin")).unwrap(),
        (0..=255u8).collect::<Vec<_>>()
    );
    assert_eq!(mode("ksh/expect/blob.bin"), 0o600);
    assert_eq!(std::fs::read(root.join("tmp/empty")).unwrap(), b"");
    assert_eq!(mode("tmp/empty"), 0o444);
    assert_eq!(mode("ksh"), 0o700);
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::read(root.join("bin/sh")).unwrap(),
        b"not really busybox"
    );
    assert!(root.join("dev").is_dir());
    assert_eq!(
        std::fs::metadata(root.join("init")).unwrap().mtime(),
        0,
        "-m keeps our mtime 0"
    );
}

#[test]
fn same_inputs_same_bytes() {
    assert_eq!(build(), build(), "two builds differ");
}
