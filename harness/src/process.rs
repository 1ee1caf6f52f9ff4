//! Process plumbing shared by every stage that starts a child: the shell
//! line a human can paste, durations for humans, tying children's lives to
//! the harness (`PR_SET_PDEATHSIG`), the Ctrl-C registry, and finding what
//! dead harness processes left behind (their PID is in the name).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The exact shell command a human can paste to reproduce `cmd`.
pub fn shell_line(cmd: &Command) -> String {
    let mut s = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!("cd {} && ", dir.display()));
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_word(&a.to_string_lossy()));
    }
    s
}

/// Runs `git -C tree ARGS`; its trimmed stdout, or an error with the
/// command, the tree and what git said.
pub fn git(tree: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("running git: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "git {} failed in {}: {} {}",
            args.join(" "),
            tree.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Default parallel jobs of a kernel build: CPUs + 1.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() + 1)
        .unwrap_or(3)
}

/// `word` quoted for a shell where it needs quotes.
pub fn shell_word(word: &str) -> String {
    if word.contains([' ', '"', '\'', '$']) {
        format!("'{}'", word.replace('\'', "'\\''"))
    } else {
        word.to_string()
    }
}

/// `1m23s` / `4.2s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1}s")
    }
}

/// Makes the kernel send `signal` to the child started from `cmd` when the
/// harness dies, however it dies (SIGKILL included). Use SIGKILL for QEMU,
/// SIGTERM for `make` and `tar` (they pass it on to their own children and
/// remove half-written targets).
pub fn die_with_parent(cmd: &mut Command, signal: i32) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            // The parent may have died between fork and prctl.
            if libc::getppid() == 1 {
                libc::raise(signal);
            }
            Ok(())
        });
    }
}

/// `cmd` run in a process group of its own, led by a small `sh` that dies
/// with the harness (SIGTERM via `PR_SET_PDEATHSIG`) and then sends
/// SIGTERM to the whole group. For `make`: the kernel's nested makes do
/// not all pass a signal on, and a SIGKILLed harness otherwise leaves
/// sub-makes and compilers running. The exit status is `cmd`'s; register
/// the returned child's PID with SIGTERM to stop the group on Ctrl-C.
pub fn group_dying_with_parent(cmd: &Command) -> Command {
    let mut wrapper = Command::new("sh");
    wrapper
        .arg("-c")
        .arg(r#"trap 'trap - TERM; kill -TERM -$$ 2>/dev/null; exit 143' TERM; "$@" & wait $!"#)
        .arg("ksh-group")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapper.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapper.env(k, v),
            None => wrapper.env_remove(k),
        };
    }
    wrapper.process_group(0);
    die_with_parent(&mut wrapper, libc::SIGTERM);
    wrapper
}

/// Whether a process with this PID exists (ours or anyone's).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Entries of `dir` whose name is `{prefix}{PID}{rest}` for a PID that no
/// longer runs: what a killed harness left behind.
pub fn left_by_dead(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(pid) = digits.parse::<u32>() {
            if pid != std::process::id() && !pid_alive(pid) {
                out.push(e.path());
            }
        }
    }
    out
}

/// Children alive right now, with the signal that stops them, so Ctrl-C
/// can take them down before the harness exits.
static LIVE: Mutex<Vec<(u32, i32)>> = Mutex::new(Vec::new());

/// Work to undo on Ctrl-C after the children are gone (e.g. `git bisect
/// reset`, removing a staging dir).
pub type Cleanup = Box<dyn Fn() + Send>;
static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());
static NEXT_CLEANUP: Mutex<u64> = Mutex::new(0);

/// Registers `f` to run on Ctrl-C, after every child has been stopped.
pub fn on_interrupt(f: Cleanup) {
    let _ = register_cleanup(f);
}

/// Like [`on_interrupt`], but the cleanup is dropped (not run) with the
/// returned guard: for work that is only to be undone while it is underway.
pub fn cleanup_while(f: Cleanup) -> CleanupGuard {
    CleanupGuard(register_cleanup(f))
}

fn register_cleanup(f: Cleanup) -> u64 {
    let mut n = NEXT_CLEANUP.lock().unwrap();
    *n += 1;
    CLEANUPS.lock().unwrap().push((*n, f));
    *n
}

/// Unregisters its cleanup when dropped.
pub struct CleanupGuard(u64);
impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if let Ok(mut v) = CLEANUPS.lock() {
            v.retain(|(id, _)| *id != self.0);
        }
    }
}

/// Installs a Ctrl-C handler that stops every live child, runs the
/// registered cleanups and exits 130.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        kill_all_live();
        if let Ok(cleanups) = CLEANUPS.lock() {
            for (_, f) in cleanups.iter() {
                f();
            }
        }
        eprintln!("\nksh: interrupted; stopped all child processes");
        std::process::exit(130);
    });
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether Ctrl-C arrived. The handler is then stopping children, running
/// cleanups and about to exit 130: an error the main thread sees now (a
/// child killed by the handler) is a consequence, not the news; callers
/// wait for [`wait_for_interrupt_handler`] instead of reporting it.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Blocks while the Ctrl-C handler finishes (it exits the process).
pub fn wait_for_interrupt_handler() {
    std::thread::sleep(Duration::from_secs(60));
}

/// Stops every child this process registered and that is still running.
pub fn kill_all_live() {
    if let Ok(pids) = LIVE.lock() {
        for &(pid, sig) in pids.iter() {
            // SAFETY: plain syscall on a pid we spawned.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }
    // Give make and tar a moment to pass the signal on and clean up.
    std::thread::sleep(Duration::from_millis(300));
}

/// Keeps `pid` in the Ctrl-C registry until dropped.
pub struct LiveGuard(u32);

/// Registers a child; Ctrl-C sends it `signal`.
pub fn register_live(pid: u32, signal: i32) -> LiveGuard {
    LIVE.lock().unwrap().push((pid, signal));
    LiveGuard(pid)
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut v) = LIVE.lock() {
            v.retain(|&(p, _)| p != self.0);
        }
    }
}

/// This program's path, for starting itself again (bisect steps, the fault
/// suite's runs). When the binary was rebuilt while it ran (a `cargo
/// build` during a long bisect), Linux names it `PATH (deleted)`; the new
/// binary at PATH is what the user built, so that one is started.
pub fn self_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.as_os_str().to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(p) if Path::new(p).is_file() => Ok(PathBuf::from(p)),
        _ => Ok(exe),
    }
}

/// Runs `cmd` with `input` on its stdin and collects stdout and stderr.
/// The input is written on a thread, so a command that writes much before
/// it has read everything cannot deadlock against us; a broken pipe only
/// means the command stopped reading early (its status and stderr say why).
pub fn output_with_input(cmd: &mut Command, input: &[u8]) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output();
    let _ = writer.join();
    out
}

/// Runs `cmd` to the end; an error when it cannot start or fails, with
/// its command line, status and stderr (what a user needs to rerun it).
pub fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    let line = shell_line(cmd);
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("starting {line}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{line} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_line_quotes_what_needs_it() {
        let mut c = Command::new("make");
        c.current_dir("/src").args(["O=/b", "CC=gcc -O2"]);
        assert_eq!(shell_line(&c), "cd /src && make O=/b 'CC=gcc -O2'");
    }

    #[test]
    fn leftovers_of_dead_pids_only() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // PID 4194304 is above the kernel's maximum: never alive.
        for n in [
            format!("ksh-{me}-a.qmp"),
            "ksh-4194304-b.qmp".to_string(),
            "ksh-x.qmp".to_string(),
        ] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let found = left_by_dead(d.path(), "ksh-");
        assert_eq!(found, vec![d.path().join("ksh-4194304-b.qmp")]);
        assert!(pid_alive(me) && !pid_alive(4194304));
    }
}
