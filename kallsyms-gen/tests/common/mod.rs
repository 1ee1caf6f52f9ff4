//! Shared helpers for the `kallsyms-gen` tests and the `vs_c` bench:
//! building the C reference tool, running both tools, fixtures, and the
//! deterministic synthetic map generator (`synth`).
//!
//! The comparisons are with 6.12's `scripts/kallsyms` unless
//! `KSH_KERNEL_FORMAT=7.3` is set (with `KSH_KERNEL_SRC` naming an unpacked
//! 7.3 tree): then the same tests compare `kallsyms-gen --format=7.3` with
//! 7.3's C tool, over 7.3's options.
#![allow(dead_code)]

pub mod synth;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Debian's kernel source package (the reference C tool is built from it).
pub const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
const TOP: &str = "linux-source-6.12";
pub const INSTALL_HINT: &str = "apt-get install linux-source-6.12";

/// The kernel whose C tool the tests compare with: `KSH_KERNEL_FORMAT`,
/// `6.12` (the default) or `7.3`.
pub fn kernel_format() -> &'static str {
    static FORMAT: OnceLock<&'static str> = OnceLock::new();
    FORMAT.get_or_init(|| match std::env::var("KSH_KERNEL_FORMAT").as_deref() {
        Err(_) | Ok("6.12") => "6.12",
        Ok("7.3") => {
            assert!(
                std::env::var_os("KSH_KERNEL_SRC").is_some(),
                "KSH_KERNEL_FORMAT=7.3 needs KSH_KERNEL_SRC: an unpacked 7.3 tree"
            );
            "7.3"
        }
        Ok(other) => panic!("KSH_KERNEL_FORMAT={other}: known formats are 6.12 and 7.3"),
    })
}

/// All option combinations the C tool of [`kernel_format`] knows.
pub fn option_sets() -> [&'static [&'static str]; 4] {
    match kernel_format() {
        "6.12" => [
            &[],
            &["--all-symbols"],
            &["--absolute-percpu"],
            &["--all-symbols", "--absolute-percpu"],
        ],
        _ => [
            &[],
            &["--all-symbols"],
            &["--pc-relative"],
            &["--all-symbols", "--pc-relative"],
        ],
    }
}

/// Whether the reference C tool writes the series' size tables
/// (`--symbol-sizes`, `--compact-sizes`): the `scripts/kallsyms.c` of a
/// patched tree in `KSH_KERNEL_SRC` has them in its long options; Debian's
/// pristine tarball does not.
pub fn c_knows_sizes() -> bool {
    static KNOWS: OnceLock<bool> = OnceLock::new();
    *KNOWS.get_or_init(|| {
        let Some(src) = std::env::var_os("KSH_KERNEL_SRC") else {
            return false;
        };
        let c = PathBuf::from(src).join("scripts/kallsyms.c");
        let text = fs::read_to_string(&c).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
        text.contains("{\"symbol-sizes\"") && text.contains("{\"compact-sizes\"")
    })
}

/// [`option_sets`], and when the C tool writes the size tables
/// ([`c_knows_sizes`]) each of them again with `--symbol-sizes` and with
/// `--symbol-sizes --compact-sizes`, as `link-vmlinux.sh` of the series
/// passes them.
pub fn sizes_option_sets() -> Vec<Vec<&'static str>> {
    let sizes: &[&[&str]] = if c_knows_sizes() {
        &[
            &[],
            &["--symbol-sizes"],
            &["--symbol-sizes", "--compact-sizes"],
        ]
    } else {
        &[&[]]
    };
    let mut v = Vec::new();
    for extra in sizes {
        for set in option_sets() {
            v.push(set.iter().chain(extra.iter()).copied().collect());
        }
    }
    v
}

/// Scratch directory under the cargo target dir.
pub fn tmp_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kallsyms-gen");
    fs::create_dir_all(&d).unwrap();
    d
}

/// A unique scratch file path for this process.
pub fn scratch(name: &str) -> PathBuf {
    tmp_dir().join(format!("{}-{}", std::process::id(), name))
}

/// The Rust tool under test.
pub fn rust_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kallsyms-gen"));
    if kernel_format() == "6.12" {
        return bin;
    }
    // Every test runs the tool as `rust_bin() OPTIONS MAP`: for another
    // kernel a wrapper puts `--format` first.
    static WRAPPER: OnceLock<PathBuf> = OnceLock::new();
    WRAPPER
        .get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            let w = scratch(&format!("kallsyms-gen-{}", kernel_format()));
            let script = format!(
                "#!/bin/sh\nexec '{}' --format={} \"$@\"\n",
                bin.display(),
                kernel_format()
            );
            fs::write(&w, script).unwrap();
            fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
            w
        })
        .clone()
}

/// The C reference tool (`scripts/kallsyms` of 6.12, or of the tree in
/// `KSH_KERNEL_SRC`), built once and cached
/// under the cargo target dir.
///
/// Source: the unpacked tree in `$KSH_KERNEL_SRC` if set, else the members
/// `scripts/kallsyms.c` and `scripts/include/` extracted from
/// `/usr/src/linux-source-6.12.tar.xz`. If neither exists this panics with
/// the install command: the comparison tests must never silently skip.
pub fn c_tool() -> PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(build_c_tool).clone()
}

fn build_c_tool() -> PathBuf {
    let cache = tmp_dir().join("c-ref");
    fs::create_dir_all(&cache).unwrap();
    let (src_dir, bin, _guard) = if let Some(src) = std::env::var_os("KSH_KERNEL_SRC") {
        let src = PathBuf::from(src);
        let c = src.join("scripts/kallsyms.c");
        let text = fs::read(&c).unwrap_or_else(|e| {
            panic!(
                "KSH_KERNEL_SRC={}: cannot read {}: {e}",
                src.display(),
                c.display()
            )
        });
        let bin = cache.join(format!("kallsyms-src-{:016x}", fnv1a(&text)));
        (src.join("scripts"), bin, None)
    } else {
        let meta = fs::metadata(TARBALL).unwrap_or_else(|e| {
            panic!(
                "the C reference tool is built from {TARBALL} ({e}); install it with \
                 `{INSTALL_HINT}` or point KSH_KERNEL_SRC at an unpacked 6.12 tree"
            )
        });
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let bin = cache.join(format!("kallsyms-tarball-{}-{}", meta.len(), mtime));
        if bin.exists() {
            return bin;
        }
        let work = cache.join(format!("extract-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap();
        let st = Command::new("tar")
            .arg("xJf")
            .arg(TARBALL)
            .arg("-C")
            .arg(&work)
            .arg(format!("{TOP}/scripts/kallsyms.c"))
            .arg(format!("{TOP}/scripts/include"))
            .status()
            .expect("running tar");
        assert!(st.success(), "extracting kallsyms.c from {TARBALL} failed");
        let guard = RemoveOnDrop(work.clone());
        (work.join(TOP).join("scripts"), bin, Some(guard))
    };
    if bin.exists() {
        return bin;
    }
    let tmp_bin = bin.with_extension(format!("tmp{}", std::process::id()));
    let out = Command::new("cc")
        .arg("-O2")
        .arg("-I")
        .arg(src_dir.join("include"))
        .arg("-o")
        .arg(&tmp_bin)
        .arg(src_dir.join("kallsyms.c"))
        .output()
        .expect("running cc (install a C compiler: apt-get install gcc)");
    assert!(
        out.status.success(),
        "compiling the C reference kallsyms failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Atomic publish: concurrent test binaries may race here.
    fs::rename(&tmp_bin, &bin).unwrap();
    bin
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Runs `bin opts... map`.
pub fn run(bin: &Path, opts: &[&str], map: &Path) -> Output {
    Command::new(bin)
        .args(opts)
        .arg(map)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// What [`run_capped`] saw: the process's output, its stdout cut at the
/// cap, and whether it was still writing there (then it was killed).
pub struct Capped {
    pub out: Output,
    pub truncated: bool,
}

/// [`run`], reading at most `cap` bytes of stdout: a tool still writing
/// then is killed. A map can make both tools write gigabytes (a previous
/// pass's `kallsyms_size_exc` billions of entries long, padded with
/// zeros); the fuzzer compares such outputs on their first `cap` bytes
/// instead of holding them in memory.
pub fn run_capped(bin: &Path, opts: &[&str], map: &Path, cap: usize) -> Capped {
    let mut child = Command::new(bin)
        .args(opts)
        .arg(map)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut v = Vec::new();
        // Past a MiB the pipe closes and the tool dies writing to it.
        let _ = (&mut stderr).take(1 << 20).read_to_end(&mut v);
        v
    });
    let mut stdout = Vec::new();
    let mut pipe = child.stdout.take().unwrap();
    let _ = (&mut pipe).take(cap as u64 + 1).read_to_end(&mut stdout);
    let truncated = stdout.len() > cap;
    if truncated {
        let _ = child.kill();
        stdout.truncate(cap);
    }
    drop(pipe);
    let status = child.wait().unwrap();
    let stderr = errors.join().unwrap();
    Capped {
        out: Output {
            status,
            stdout,
            stderr,
        },
        truncated,
    }
}

/// True if the process ended because of a Rust panic (or any signal).
pub fn panicked(out: &Output) -> bool {
    out.status.code() == Some(101)
        || out.status.code().is_none()
        || String::from_utf8_lossy(&out.stderr).contains("panicked")
}

/// Outcome of one comparison.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    BothOk,
    BothFailed,
}

/// Runs both tools on `map` with `opts` and asserts identical behaviour:
/// both succeed with byte-identical stdout, or both fail (and Rust prints
/// nothing on stdout). Panics with a description otherwise.
pub fn compare(map: &Path, opts: &[&str], what: &str) -> Outcome {
    let c = run(&c_tool(), opts, map);
    let r = run(&rust_bin(), opts, map);
    check_pair(&c, &r, opts, what)
}

pub fn check_pair(c: &Output, r: &Output, opts: &[&str], what: &str) -> Outcome {
    assert!(
        !panicked(r),
        "{what} {opts:?}: Rust tool crashed: {:?}\n{}",
        r.status,
        String::from_utf8_lossy(&r.stderr)
    );
    match (c.status.success(), r.status.success()) {
        (true, true) => {
            if c.stdout != r.stdout {
                let pos = c.stdout.iter().zip(&r.stdout).position(|(a, b)| a != b);
                let pos = pos.unwrap_or(c.stdout.len().min(r.stdout.len()));
                let line = c.stdout[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
                let ctx = |v: &[u8]| {
                    let s = v[..pos]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |p| p + 1);
                    let e = (pos + 200).min(v.len());
                    String::from_utf8_lossy(&v[s..e]).into_owned()
                };
                panic!(
                    "{what} {opts:?}: outputs differ at byte {pos} (line {line}); sizes C {} Rust {}\n\
                     --- C:\n{}\n--- Rust:\n{}",
                    c.stdout.len(),
                    r.stdout.len(),
                    ctx(&c.stdout),
                    ctx(&r.stdout)
                );
            }
            Outcome::BothOk
        }
        (false, false) => {
            assert!(
                r.stdout.is_empty(),
                "{what} {opts:?}: Rust failed but wrote to stdout"
            );
            Outcome::BothFailed
        }
        (c_ok, _) => panic!(
            "{what} {opts:?}: C {} ({:?}) but Rust {} ({:?})\nC stderr: {}\nRust stderr: {}",
            if c_ok { "succeeded" } else { "failed" },
            c.status,
            if c_ok { "failed" } else { "succeeded" },
            r.status,
            String::from_utf8_lossy(&c.stderr),
            String::from_utf8_lossy(&r.stderr)
        ),
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn gunzip(path: &Path) -> Vec<u8> {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Real kernel maps committed as fixtures: `tests/fixtures/<arch>-*.syms.gz`,
/// returned as (name, contents).
pub fn real_map_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir(fixtures_dir()) else {
        return v;
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".syms.gz") {
            v.push((name.trim_end_matches(".gz").to_string(), gunzip(&p)));
        }
    }
    v
}

/// Every `*.syms` file under `$KSH_MAPS_DIR` (recursively), if set. Set
/// (as `.ci/run` does), it must hold maps: a dir without any would let the
/// live-map comparisons pass having compared nothing.
pub fn maps_dir_files() -> Vec<PathBuf> {
    let Some(dir) = std::env::var_os("KSH_MAPS_DIR") else {
        return Vec::new();
    };
    let root = PathBuf::from(&dir);
    let mut out = Vec::new();
    // Build dirs are links into the source trees (`build/KEY/CELL` ->
    // `src/KEY/.ksh-build-CELL`), and Kbuild's `source` link in each points
    // back at the tree: follow links, but never into a dir seen before and
    // never through `source`.
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        if !seen.insert(fs::canonicalize(&d).unwrap_or_else(|_| d.clone())) {
            continue;
        }
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let link = e.file_type().is_ok_and(|t| t.is_symlink());
            if link && e.file_name() == "source" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "syms") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(
        !out.is_empty(),
        "KSH_MAPS_DIR={} holds no *.syms map (a kernel build leaves them in its build dir)",
        root.display()
    );
    out
}

/// Kernel identifiers (one per line) used to build realistic names.
pub fn kernel_idents() -> Vec<Vec<u8>> {
    let data = gunzip(&fixtures_dir().join("kernel-idents.txt.gz"));
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect()
}

/// Removes the `nm -S` size column from 4-column lines (what the C tool
/// would have been fed without `-S`).
pub fn strip_sizes(map: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(map.len());
    for line in map.split_inclusive(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.splitn(4, |&b| b == b' ').collect();
        if f.len() == 4
            && f[1].len() >= 2
            && f[1].iter().all(u8::is_ascii_hexdigit)
            && f[2].len() == 1
        {
            out.extend_from_slice(f[0]);
            out.push(b' ');
            out.extend_from_slice(f[2]);
            out.push(b' ');
            out.extend_from_slice(f[3]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}
