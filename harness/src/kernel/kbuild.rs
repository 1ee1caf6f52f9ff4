//! Building a kernel: one persistent, out-of-tree (`O=`) build dir per
//! (source, arch, config variant), configured from fragments and built
//! incrementally. Full `make` output goes to `build.log` in the build dir; the
//! terminal shows the phase and the elapsed time.

use std::fs;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::cell::toolchain::Toolchain;
use crate::cell::CellId;
use crate::kernel::kconfig;
use crate::kernel::source::KernelSource;
use crate::layout;
use crate::process::{fmt_duration, shell_line};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// The cell: its arch, config variant and toolchain.
    pub cell: &'a CellId,
    pub source: &'a KernelSource,
    /// `make -j` value.
    pub jobs: usize,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub dir: PathBuf,
    pub image: PathBuf,
    pub vmlinux: PathBuf,
    pub log: PathBuf,
    /// What compiled it: an external module must be built with the same.
    pub toolchain: Toolchain,
    /// False when nothing had changed and `make` was not run.
    pub ran_make: bool,
    pub elapsed: Duration,
}

impl BuildRequest<'_> {
    /// The persistent build dir for this request.
    pub fn build_dir(&self) -> PathBuf {
        self.cell.build_dir(&self.source.key)
    }

    /// Where the objects really are. For a harness-owned tree that is a
    /// direct subdirectory of the tree (`.ksh-build-<arch>-<config>`), so
    /// Kbuild builds with `srctree := ..` and the compile commands carry no
    /// tree path: the patched, baseline, mutant and series-prefix trees of
    /// one arch/config then share compiler results (`ccache`). `build_dir()`
    /// is a relative link to it. A user's tree is not written to: its
    /// objects stay in `build_dir()` itself.
    pub fn object_dir(&self) -> PathBuf {
        if self.source.objects_in_tree {
            self.cell.in_tree_build_dir(&self.source.tree)
        } else {
            self.build_dir()
        }
    }

    /// `make` with the arch's variables, `O=` and the compiler cache.
    fn make(&self, dir: &Path) -> Command {
        let mut cmd = Command::new("make");
        let toolchain = self.toolchain();
        cmd.current_dir(&self.source.tree)
            .arg(format!("O={}", dir.display()))
            .arg(format!("ARCH={}", self.cell.arch.kernel_arch))
            .args(toolchain.make_vars(self.cell.arch))
            // Checked at the start of `build()`.
            .args(kconfig::make_vars(&self.cell.variant).unwrap_or_default());
        if let Some(cache) = ccache::dir() {
            // Every make of a build dir (config steps too) must name the
            // same CC, or Kconfig sees a new compiler and reconfigures.
            cmd.arg(format!("CC=ccache {}", toolchain.cc(self.cell.arch)))
                .env("CCACHE_DIR", cache)
                .env("CCACHE_STATSLOG", dir.join(ccache::STATS_LOG));
            for (k, v) in ccache::MODE {
                cmd.env(k, v);
            }
        }
        cmd
    }

    fn label(&self) -> String {
        self.cell.name()
    }

    /// The cell's toolchain.
    pub fn toolchain(&self) -> Toolchain {
        self.cell.toolchain
    }
}

const CONFIG_STAMP: &str = ".ksh-config-stamp";
const BUILD_STAMP: &str = ".ksh-build-stamp";

/// Whether the build dir belongs to `tree`: Kbuild's own `source` link in
/// an `O=` dir names the tree it was set up from. A dir of another tree (a
/// moved cache, a reused key) is reconfigured rather than reported up to
/// date; a dir without the link (never configured) counts as not yet.
fn configured_for(dir: &Path, tree: &Path) -> bool {
    let Ok(link) = fs::read_link(dir.join("source")) else {
        return false;
    };
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canon(&dir.join(link)) == canon(tree)
}
/// Size and digest of each output (`vmlinux`, the boot image) as `make`
/// left them: a cached output is verified against it, never trusted.
const OUTPUTS_STAMP: &str = ".ksh-outputs-stamp";

/// The stamp lines of `outputs` (`NAME SIZE DIGEST`).
fn outputs_stamp(dir: &Path, outputs: &[&Path]) -> Result<String> {
    let mut s = String::new();
    for o in outputs {
        let (len, digest) = layout::file_digest(o)?;
        let name = o.strip_prefix(dir).unwrap_or(o);
        s.push_str(&format!("{} {len} {digest}\n", name.display()));
    }
    Ok(s)
}

/// What is wrong with the outputs, compared to their stamp: `None` when
/// they match it; `Some(why)` for a missing stamp or a mismatch, after
/// removing the outputs that do not match (so `make` remakes them).
fn verify_outputs(dir: &Path, outputs: &[&Path]) -> Option<String> {
    let Ok(stamp) = fs::read_to_string(dir.join(OUTPUTS_STAMP)) else {
        return Some(String::new());
    };
    let mut bad = Vec::new();
    for o in outputs {
        let name = o.strip_prefix(dir).unwrap_or(o).display().to_string();
        let want = stamp
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or("(not stamped)");
        let have = match layout::file_digest(o) {
            Ok((len, d)) => format!("{len} {d}"),
            Err(_) => "(missing)".to_string(),
        };
        if have != want {
            let size = |x: &str| x.split(' ').next().unwrap_or("").to_string();
            bad.push(format!(
                "{name} is {} bytes, stamped {}{}",
                size(&have),
                size(want),
                if size(&have) == size(want) {
                    " with another digest"
                } else {
                    ""
                }
            ));
            let _ = fs::remove_file(o);
        }
    }
    if bad.is_empty() {
        None
    } else {
        Some(bad.join("; "))
    }
}

/// Every requested option is in the build dir's `.config` with the
/// requested value, except the series options a tree without the series
/// lacks (`kconfig::excuse_undeclared`, logged in `log`).
fn check_landed(
    req: &BuildRequest,
    dir: &Path,
    wanted: &kconfig::Options,
    frags: &[PathBuf],
    log: &Path,
) -> Result<()> {
    let actual_text = fs::read_to_string(dir.join(".config"))?;
    let actual = kconfig::parse(&actual_text, &dir.join(".config"))?;
    let mut mismatches = kconfig::verify(wanted, &actual);
    let excused =
        kconfig::excuse_undeclared(&mut mismatches, &req.source.tree, req.source.whole_series)?;
    if !excused.is_empty() {
        let mut logf = fs::OpenOptions::new().append(true).open(log)?;
        writeln!(
            logf,
            "# ksh: this tree does not declare {} (options of the kallsyms series): built without them",
            excused.join(", ")
        )?;
    }
    if !mismatches.is_empty() {
        let list: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
        bail!(
            "{}: {} requested option(s) did not land in {} (a dependency is off or the option does not exist):\n{}\nfragments: {}",
            req.label(),
            mismatches.len(),
            dir.join(".config").display(),
            list.join("\n"),
            frags.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" ")
        );
    }
    Ok(())
}

/// Configures (when the fragments changed) and builds.
pub fn build(req: &BuildRequest) -> Result<Built> {
    let started = Instant::now();
    let dir = req.build_dir();
    link_object_dir(req)?;
    layout::ensure_dir(&dir)?;
    let _lock = layout::lock(&dir.with_extension("lock"))?;
    // A mutant applied to the harness's tree by another process is not
    // built into this cell: builds share the tree, a mutant holds it alone.
    let _tree = if req.source.whole_series {
        crate::kernel::mutants::building_tree(&req.source.tree)?
    } else {
        None
    };
    let log = layout::build_log(&dir);
    let frags = kconfig::fragments(req.cell.arch, &req.cell.variant)?;
    // A malformed `# make:` line stops here, not silently in `req.make()`.
    kconfig::make_vars(&req.cell.variant)?;
    let (wanted, frag_digest) = kconfig::requested(&frags)?;
    let config_stamp = format!(
        "{frag_digest} {} {}",
        req.source.key,
        crate::kernel::source::series_kconfig_digest(&req.source.tree)
    );
    let configured = fs::read_to_string(dir.join(CONFIG_STAMP)).ok().as_deref()
        == Some(config_stamp.as_str())
        && configured_for(&dir, &req.source.tree)
        && dir.join(".config").is_file();
    // Start from a fresh log per build so its tail is about this build.
    let mut logf = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    writeln!(
        logf,
        "# ksh build of {} from {}",
        req.label(),
        req.source.describe
    )?;
    drop(logf);

    if !configured {
        let base = kconfig::base_targets(&req.cell.variant)?;
        status(
            req,
            &format!("configuring ({} + fragments)", base.join(" + ")),
        );
        let _ = fs::remove_file(dir.join(CONFIG_STAMP));
        let _ = fs::remove_file(dir.join(BUILD_STAMP));
        for target in &base {
            let mut start = req.make(&dir);
            start.arg(target);
            run_logged(req, start, &log, target)?;
        }
        let mut merge = Command::new(req.source.tree.join("scripts/kconfig/merge_config.sh"));
        merge
            .current_dir(&req.source.tree)
            .arg("-m")
            .arg("-O")
            .arg(&dir)
            .arg(dir.join(".config"))
            .args(&frags);
        run_logged(req, merge, &log, "merge_config.sh")?;
        let mut olddef = req.make(&dir);
        olddef.arg("olddefconfig");
        run_logged(req, olddef, &log, "olddefconfig")?;
        check_landed(req, &dir, &wanted, &frags, &log)?;
        fs::write(dir.join(CONFIG_STAMP), &config_stamp)?;
    }

    let image = dir.join(req.cell.arch.image);
    let vmlinux = dir.join("vmlinux");
    // A no-op `make` of a kernel still takes seconds; skip it when no source
    // file, fragment or patch changed since the last successful build.
    let build_stamp = dir.join(BUILD_STAMP);
    let outputs: Vec<&Path> = if image == vmlinux {
        vec![vmlinux.as_path()]
    } else {
        vec![vmlinux.as_path(), image.as_path()]
    };
    if let Some(why) = verify_outputs(&dir, &outputs) {
        if !why.is_empty() {
            eprintln!(
                "ksh: {}: cached output does not match its stamp ({why}); rebuilding",
                req.label()
            );
        }
        let _ = fs::remove_file(&build_stamp);
    }
    if let Ok(md) = fs::metadata(&build_stamp) {
        let last = md.modified()?;
        if image.is_file() && vmlinux.is_file() && newest_mtime(&req.source.tree)? < last {
            return Ok(Built {
                dir,
                image,
                vmlinux,
                log,
                toolchain: req.toolchain(),
                ran_make: false,
                elapsed: started.elapsed(),
            });
        }
    }
    remove_stale_outputs(&dir);
    let make_started = SystemTime::now();
    // No stamps while make runs: an interrupted build is never up to date.
    let _ = fs::remove_file(&build_stamp);
    let _ = fs::remove_file(dir.join(OUTPUTS_STAMP));
    let _ = fs::remove_file(dir.join(ccache::STATS_LOG));
    let mut make = req.make(&dir);
    make.arg(format!("-j{}", req.jobs));
    // A build without vmlinux and without objects compiles (about)
    // everything: show how far it is against the expected total. (Without
    // vmlinux alone is not enough: a link that failed removes it, and the
    // next build compiles a handful of files.)
    let cold = !vmlinux.is_file() && !dir.join("init/main.o").is_file();
    let expected = if cold {
        expected_objects(req, &dir)
    } else {
        None
    };
    let compiled = run_counted(req, make, &log, "make", true, expected)?;
    // `make` follows a changed Kconfig (a patch of the series, a mutant)
    // with its own syncconfig, without the harness reconfiguring: what
    // landed is checked again, or an option a patch stopped declaring
    // would vanish from .config unseen.
    check_landed(req, &dir, &wanted, &frags, &log)?;
    if cold && compiled > 0 {
        let _ = fs::write(dir.join(OBJECTS_RECORD), format!("{compiled}\n"));
    }
    let cache_use = ccache::Use::read(&dir.join(ccache::STATS_LOG));
    for o in &outputs {
        if !o.is_file() {
            bail!(
                "{}: make succeeded but {} is missing; see {}",
                req.label(),
                o.display(),
                log.display()
            );
        }
    }
    fs::write(dir.join(OUTPUTS_STAMP), outputs_stamp(&dir, &outputs)?)
        .with_context(|| format!("writing {}", dir.join(OUTPUTS_STAMP).display()))?;
    let f = fs::File::create(&build_stamp)?;
    f.set_modified(make_started)?;
    status_done(req, started.elapsed(), cache_use);
    Ok(Built {
        dir,
        image,
        vmlinux,
        log,
        toolchain: req.toolchain(),
        ran_make: true,
        elapsed: started.elapsed(),
    })
}

/// Outputs of earlier layouts of the series that are in the way of the
/// current one: Kbuild cannot turn a file into a directory. Before the
/// generator became a module directory (`scripts/kallsyms-rs/`), the
/// series built it as the file `scripts/kallsyms-rs`; a build dir made then
/// fails with "mkdir: cannot create directory 'scripts/kallsyms-rs': File
/// exists".
const STALE_FILES: &[&str] = &["scripts/kallsyms-rs", "scripts/.kallsyms-rs.cmd"];

/// Removes [`STALE_FILES`] that are regular files (a directory of that
/// name is the current layout and stays).
fn remove_stale_outputs(dir: &Path) {
    for rel in STALE_FILES {
        let p = dir.join(rel);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) && fs::remove_file(&p).is_ok() {
            eprintln!(
                "ksh: removed {} (an output of an earlier layout of the series, in the way of the current one)",
                p.display()
            );
        }
    }
}

/// Newest modification time of any file in the tree (`.git` and the
/// in-tree build dirs excluded).
fn newest_mtime(tree: &Path) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![tree.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                let name = e.file_name();
                if name != ".git" && !layout::is_in_tree_build_dir(&name) {
                    stack.push(e.path());
                }
                continue;
            }
            if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
    }
    Ok(newest)
}

fn status(req: &BuildRequest, what: &str) {
    eprintln!("ksh: {}: {what}", req.label());
}

fn status_done(req: &BuildRequest, elapsed: Duration, cache_use: Option<ccache::Use>) {
    let tty = std::io::stderr().is_terminal();
    if tty {
        eprint!("\r\x1b[K");
    }
    let cache = cache_use.map(|u| format!(" ({u})")).unwrap_or_default();
    eprintln!(
        "ksh: {}: kernel built in {}{cache}",
        req.label(),
        fmt_duration(elapsed)
    );
}

/// For a harness-owned tree, makes `build_dir()` a relative link to the
/// in-tree object dir (a relative link keeps working when the checkout and
/// its cache are moved together). A real dir there (the layout before
/// in-tree objects) is removed: its objects were built with absolute paths
/// and would all be recompiled anyway.
fn link_object_dir(req: &BuildRequest) -> Result<()> {
    if !req.source.objects_in_tree {
        return Ok(());
    }
    let link = req.build_dir();
    let objects = req.object_dir();
    layout::ensure_dir(&objects)?;
    let parent = link.parent().expect("a build dir has a parent");
    layout::ensure_dir(parent)?;
    let target = relative_path(parent, &objects);
    match fs::symlink_metadata(&link) {
        Ok(md) if md.file_type().is_symlink() => {
            if fs::read_link(&link)? == target {
                return Ok(());
            }
            fs::remove_file(&link)?;
        }
        Ok(_) => {
            eprintln!(
                "ksh: {}: moving the build dir into the source tree ({}); the old one at {} is removed",
                req.label(),
                objects.display(),
                link.display()
            );
            fs::remove_dir_all(&link)
                .with_context(|| format!("removing the old build dir {}", link.display()))?;
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(&target, &link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

/// `to` as seen from the directory `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    rel
}

/// The compiler cache: Debian's `ccache`, its store in the harness cache.
/// Keying is ccache's own: the compiler binary, the full command line, the
/// source and every header it included, by content (so `.config` via
/// `autoconf.h`), are hashed, so a config or compiler change can never
/// reuse a wrong object.
pub mod ccache {
    use std::fmt;
    use std::path::{Path, PathBuf};

    /// ccache's depend mode: the headers of an object come from the
    /// dependency file Kbuild already asks gcc for (`-Wp,-MMD`), instead of
    /// a separate preprocessor run per compile. In the default mode a miss
    /// runs `cpp` and then the compiler: on this 2-core machine 59 kernel
    /// objects took 52-55 s on an empty cache against 33-40 s without
    /// ccache; in depend mode 37 s, and 3.9 s when warm. Hits across trees
    /// (patched and baseline) still work: the command lines are relative.
    pub const MODE: [(&str, &str); 2] = [("CCACHE_DEPEND", "1"), ("CCACHE_DIRECT", "1")];

    /// Per-build statistics log in the build dir (ccache's `stats_log`).
    pub const STATS_LOG: &str = "ccache-stats.log";

    /// The cache dir, or `None` when ccache is not installed or
    /// `KSH_CCACHE=0` turns it off (to time a build without it).
    pub fn dir() -> Option<PathBuf> {
        if std::env::var("KSH_CCACHE").as_deref() == Ok("0") {
            return None;
        }
        let on_path = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ccache").is_file()));
        on_path.then(crate::layout::ccache_dir)
    }

    /// Hits and misses of one `make`, from its stats log.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Use {
        pub hits: u64,
        pub misses: u64,
    }

    impl Use {
        /// `None` when there is no log (ccache off, or nothing compiled).
        pub fn read(log: &Path) -> Option<Use> {
            let text = std::fs::read_to_string(log).ok()?;
            Some(Self::parse(&text))
        }

        fn parse(text: &str) -> Use {
            let mut u = Use { hits: 0, misses: 0 };
            for l in text.lines().map(str::trim) {
                match l {
                    "direct_cache_hit" | "preprocessed_cache_hit" => u.hits += 1,
                    "cache_miss" => u.misses += 1,
                    _ => {}
                }
            }
            u
        }

        pub fn hit_rate(&self) -> f64 {
            let total = self.hits + self.misses;
            if total == 0 {
                0.0
            } else {
                self.hits as f64 / total as f64
            }
        }
    }

    impl fmt::Display for Use {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "compiler cache: {} of {} objects hit, {:.0}%",
                self.hits,
                self.hits + self.misses,
                100.0 * self.hit_rate()
            )
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn stats_log_counts_hits_and_misses() {
            let log = "# ../kernel/a.c\ncache_miss\ndirect_cache_miss\npreprocessed_cache_miss\n\
                       # ../kernel/b.c\ndirect_cache_hit\nlocal_storage_hit\n\
                       # ../kernel/c.c\ndirect_cache_miss\npreprocessed_cache_hit\n";
            let u = Use::parse(log);
            assert_eq!(u, Use { hits: 2, misses: 1 });
            assert_eq!(u.to_string(), "compiler cache: 2 of 3 objects hit, 67%");
        }
    }
}

/// Runs `cmd`, appending its output to `log`; shows progress; on failure
/// returns the log tail, its path and the command to reproduce.
fn run_logged(req: &BuildRequest, cmd: Command, log: &Path, phase: &str) -> Result<()> {
    run_counted(req, cmd, log, phase, false, None).map(|_| ())
}

/// [`run_logged`] for `make`: counts the objects compiled (Kbuild's
/// `CC`/`AS` lines) and, with `expected` (a cold build's total), shows
/// done/total and an ETA. Returns the count.
fn run_counted(
    req: &BuildRequest,
    cmd: Command,
    log: &Path,
    phase: &str,
    counting: bool,
    expected: Option<Expected>,
) -> Result<u64> {
    let line = shell_line(&cmd);
    // make and everything it starts die with the harness, however it dies.
    let mut cmd = crate::process::group_dying_with_parent(&cmd);
    let mut logf = fs::OpenOptions::new().append(true).open(log)?;
    writeln!(logf, "$ {line}")?;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {line}"))?;
    let _live = crate::process::register_live(child.id(), libc::SIGTERM);
    // Merge stderr into the same log through a second thread.
    let stderr = child.stderr.take().unwrap();
    let mut log_err = logf.try_clone()?;
    let err_thread = std::thread::spawn(move || {
        for l in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            let _ = log_err.write_all(&l);
            let _ = log_err.write_all(b"\n");
        }
    });
    let tty = std::io::stderr().is_terminal();
    let mut last_report = Instant::now();
    let mut compiled = 0u64;
    for l in BufReader::new(child.stdout.take().unwrap())
        .split(b'\n')
        .map_while(Result::ok)
    {
        logf.write_all(&l)?;
        logf.write_all(b"\n")?;
        if is_compile_line(&l) {
            compiled += 1;
        }
        let elapsed = started.elapsed();
        let progress = if counting {
            progress_text(compiled, expected, elapsed)
        } else {
            format!("running for {}", fmt_duration(elapsed))
        };
        if tty && last_report.elapsed() > Duration::from_millis(200) {
            let text = String::from_utf8_lossy(&l);
            let text: String = text.trim().chars().take(40).collect();
            eprint!("\r\x1b[Kksh: {}: {phase} {progress}  {text}", req.label(),);
            last_report = Instant::now();
        } else if !tty && last_report.elapsed() > PROGRESS_EVERY {
            eprintln!("ksh: {}: {phase} {progress}", req.label());
            last_report = Instant::now();
        }
    }
    let _ = err_thread.join();
    let st = child.wait()?;
    if tty {
        eprint!("\r\x1b[K");
    }
    if !st.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text
            .lines()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let full_disk = if text.contains("No space left on device") {
            format!(
                "no space left on device ({} free in {}): ",
                layout::free_space(log),
                log.parent().unwrap_or(log).display()
            )
        } else {
            String::new()
        };
        bail!(
            "{full_disk}{}: {phase} failed ({st}) after {}\n--- last lines of {} ---\n{}\n---\nreproduce: {line}",
            req.label(),
            fmt_duration(started.elapsed()),
            log.display(),
            tail.join("\n")
        );
    }
    Ok(compiled)
}

/// How often a build without a terminal (CI logs) reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// The objects a cold build compiles, and where the figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub objects: u64,
    /// Recorded by an earlier cold build (false: the variant file's estimate).
    pub recorded: bool,
}

/// Kbuild's quiet line for one compiled object: `  CC      path.o`,
/// `  AS      path.o`, `  CC [M]  path.o`.
fn is_compile_line(l: &[u8]) -> bool {
    let t = l.trim_ascii_start();
    (t.starts_with(b"CC ") || t.starts_with(b"AS ")) && t.ends_with(b".o") && l.starts_with(b" ")
}

/// `412/1203 objects (34%), 3m10s, ETA 6m05s`; without a total (an
/// incremental build), `5 objects compiled, 12.0s`.
pub fn progress_text(done: u64, expected: Option<Expected>, elapsed: Duration) -> String {
    let Some(e) = expected else {
        return format!("{done} objects compiled, {}", fmt_duration(elapsed));
    };
    let total = e.objects.max(1);
    let approx = if e.recorded { "" } else { "~" };
    let pct = (done * 100 / total).min(99);
    // An ETA once a twentieth is done: before that the rate is mostly
    // configuration and header generation.
    let eta = if done >= total {
        "linking".to_string()
    } else if done * 20 >= total {
        let left = elapsed.mul_f64((total - done) as f64 / done as f64);
        format!("ETA {}", fmt_duration(left))
    } else {
        "ETA -".to_string()
    };
    format!(
        "{done}/{approx}{total} objects ({pct}%), {}, {eta}",
        fmt_duration(elapsed)
    )
}

/// Where a cold build records how many objects it compiled.
const OBJECTS_RECORD: &str = ".ksh-objects-compiled";

/// What a cold build of this cell will compile: its own last cold build's
/// count, else one of the same arch/config from another source in the
/// cache, else the variant file's `# objects: ARCH=N` estimate.
fn expected_objects(req: &BuildRequest, dir: &Path) -> Option<Expected> {
    let read = |p: &Path| -> Option<u64> { fs::read_to_string(p).ok()?.trim().parse().ok() };
    if let Some(n) = read(&dir.join(OBJECTS_RECORD)) {
        return Some(Expected {
            objects: n,
            recorded: true,
        });
    }
    let cell = req.cell.dir_name();
    if let Ok(sources) = fs::read_dir(layout::build_root()) {
        for s in sources.flatten() {
            if let Some(n) = read(&s.path().join(&cell).join(OBJECTS_RECORD)) {
                return Some(Expected {
                    objects: n,
                    recorded: true,
                });
            }
        }
    }
    kconfig::objects_estimate(req.cell.arch, &req.cell.variant).map(|n| Expected {
        objects: n,
        recorded: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_dir_of_another_tree_is_not_configured() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, o) = (d.path().join("a"), d.path().join("b"), d.path().join("o"));
        for x in [&a, &b, &o] {
            fs::create_dir(x).unwrap();
        }
        assert!(!configured_for(&o, &a), "no link yet");
        std::os::unix::fs::symlink(&a, o.join("source")).unwrap();
        assert!(configured_for(&o, &a));
        assert!(!configured_for(&o, &b));
    }

    #[test]
    fn outputs_are_verified_against_their_stamp() {
        let d = tempfile::tempdir().unwrap();
        let (vmlinux, image) = (d.path().join("vmlinux"), d.path().join("Image"));
        fs::write(&vmlinux, vec![1u8; 4096]).unwrap();
        fs::write(&image, vec![2u8; 1024]).unwrap();
        let outputs = [vmlinux.as_path(), image.as_path()];
        assert_eq!(
            verify_outputs(d.path(), &outputs).as_deref(),
            Some(""),
            "no stamp yet: unverified"
        );
        fs::write(
            d.path().join(OUTPUTS_STAMP),
            outputs_stamp(d.path(), &outputs).unwrap(),
        )
        .unwrap();
        assert_eq!(verify_outputs(d.path(), &outputs), None);
        // Same size, other bytes; and a truncated image.
        fs::write(&vmlinux, vec![3u8; 4096]).unwrap();
        fs::write(&image, vec![2u8; 10]).unwrap();
        let why = verify_outputs(d.path(), &outputs).unwrap();
        assert!(
            why.contains("vmlinux is 4096 bytes, stamped 4096 with another digest")
                && why.contains("Image is 10 bytes, stamped 1024"),
            "{why}"
        );
        assert!(
            !vmlinux.exists() && !image.exists(),
            "removed so make remakes them"
        );
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn compile_lines_and_progress() {
        assert!(is_compile_line(b"  CC      kernel/fork.o"));
        assert!(is_compile_line(b"  AS      arch/x86/entry/entry_64.o"));
        assert!(is_compile_line(b"  CC [M]  /x/ksh_probe.o"));
        assert!(!is_compile_line(b"  CC      kernel/bounds.s"));
        assert!(!is_compile_line(b"  HOSTCC  scripts/kallsyms.o"));
        assert!(!is_compile_line(b"  LD      vmlinux.o"));
        let e = Some(Expected {
            objects: 1000,
            recorded: true,
        });
        let s = |d| progress_text(d, e, Duration::from_secs(100));
        assert_eq!(s(10), "10/1000 objects (1%), 1m40s, ETA -");
        assert_eq!(s(500), "500/1000 objects (50%), 1m40s, ETA 1m40s");
        assert_eq!(s(1200), "1200/1000 objects (99%), 1m40s, linking");
        let est = Some(Expected {
            objects: 1000,
            recorded: false,
        });
        assert!(progress_text(1, est, Duration::from_secs(1)).starts_with("1/~1000 objects"));
        assert_eq!(
            progress_text(5, None, Duration::from_secs(12)),
            "5 objects compiled, 12.0s"
        );
        assert!(
            objects_estimate_for_test().is_some_and(|n| n > 500),
            "minimal's figure for an unlisted variant"
        );
    }

    fn objects_estimate_for_test() -> Option<u64> {
        kconfig::objects_estimate(&crate::cell::arch::X86_64, "no-such-variant")
    }
}
