//! `build/link-stable`: the kallsyms tables linked into `vmlinux` are the
//! ones its own symbols give.
//!
//! `scripts/link-vmlinux.sh` links two or three times: each pass runs the
//! generator on the previous link's map, and the final `vmlinux` is linked
//! with the last pass's tables. The kernel's own check (step "a", the
//! "Inconsistent kallsyms data" error) compares only the addresses
//! (`System.map` against the last pass's map). The size tables depend on
//! the sizes too, and their compact encoding on the gaps between
//! addresses, so a table whose length changes between passes could leave
//! tables in `vmlinux` that describe a layout it does not have. This case
//! proves it does not happen, on every kernel the harness builds: the
//! final `vmlinux`'s map with sizes (`nm -n -S`, filtered by
//! `scripts/mksysmap` as the link does) must equal the last pass's map
//! byte for byte, and the generator run on that final map must write the
//! last pass's tables byte for byte.
//!
//! The check runs here, as a build step, and leaves a [`LinkStableRecord`]
//! (the verdict is the judge's, `results::judge`). A passing check is
//! kept next to the build (`.ksh-link-stable`, newer than `vmlinux`), so a
//! warm run does not repeat the `nm`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::cell::arch::ArchProfile;
use crate::cell::toolchain::Toolchain;
use crate::cell::Kernel;

/// The kept verdict of a passing check (its mtime is compared with
/// `vmlinux`'s).
const VERDICT_FILE: &str = ".ksh-link-stable";

/// The last link pass in `dir`: its number and whether its map has sizes
/// (`.tmp_vmlinuxN.sized.syms`, written by the series) or not (the
/// baseline's `.tmp_vmlinuxN.syms`).
fn last_pass(dir: &Path) -> Option<(u32, bool)> {
    let mut best: Option<(u32, bool)> = None;
    for e in fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".tmp_vmlinux") else {
            continue;
        };
        let (n, sized) = if let Some(n) = rest.strip_suffix(".sized.syms") {
            (n, true)
        } else if let Some(n) = rest.strip_suffix(".syms") {
            (n, false)
        } else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        // Pass 0 is the empty placeholder table, never the last.
        if n == 0 {
            continue;
        }
        best = match best {
            Some((b, s)) if b > n || (b == n && s) => Some((b, s)),
            _ => Some((n, sized)),
        };
    }
    best
}

/// The generator options `link-vmlinux.sh` of `kernel` passes for this
/// `.config`.
fn generator_options(kernel: Kernel, config: &str, sized: bool) -> Vec<&'static str> {
    let mut opts = kernel.generator_flags(config);
    if sized {
        opts.extend(["--symbol-sizes", "--compact-sizes"]);
    }
    opts
}

/// Runs `cmd` in `dir`, returning its stdout; the error names the command.
fn output(mut cmd: Command, what: &str) -> Result<Vec<u8>, String> {
    stdout_of(what, cmd.stdin(Stdio::null()).output())
}

/// The stdout of a finished command, or an error naming it (`what`) with
/// its status and stderr.
fn stdout_of(what: &str, out: std::io::Result<std::process::Output>) -> Result<Vec<u8>, String> {
    let out = out.map_err(|e| format!("{what}: cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// What the check left after a build step: the judge (`results::judge`)
/// turns it into `build/link-stable`'s verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStableRecord {
    /// The build dir checked.
    pub dir: PathBuf,
    /// What was equal (a kept verdict's text), or why the check failed.
    pub outcome: Result<String, String>,
}

/// The check of the finished build in `dir` (or its kept verdict, when
/// newer than `vmlinux`).
pub fn check_built(
    dir: &Path,
    arch: &ArchProfile,
    toolchain: Toolchain,
    kernel: Kernel,
) -> LinkStableRecord {
    let vmlinux = dir.join("vmlinux");
    let verdict = dir.join(VERDICT_FILE);
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let record = |outcome| LinkStableRecord {
        dir: dir.to_path_buf(),
        outcome,
    };
    if let (Some(v), Some(k)) = (mtime(&vmlinux), mtime(&verdict)) {
        if let Ok(kept) = fs::read_to_string(&verdict) {
            if k >= v && kept.starts_with("pass") {
                return record(Ok(kept.trim_end().to_string()));
            }
        }
    }
    match check(dir, arch, toolchain, kernel) {
        Ok(summary) => {
            let _ = fs::write(&verdict, format!("pass: {summary}\n"));
            record(Ok(format!("pass: {summary}")))
        }
        Err(why) => {
            let _ = fs::remove_file(&verdict);
            record(Err(why))
        }
    }
}

fn check(
    dir: &Path,
    arch: &ArchProfile,
    toolchain: Toolchain,
    kernel: Kernel,
) -> Result<String, String> {
    let config = fs::read_to_string(dir.join(".config"))
        .map_err(|e| format!("{}: {e}", dir.join(".config").display()))?;
    if !config.lines().any(|l| l == "CONFIG_KALLSYMS=y") {
        return Err("CONFIG_KALLSYMS is not set: there are no tables to check".into());
    }
    let Some((pass, sized)) = last_pass(dir) else {
        return Err(format!(
            "no link pass map (.tmp_vmlinuxN.syms) in {}: nothing to compare",
            dir.display()
        ));
    };
    let srctree: PathBuf = dir.join("source");
    let nm = toolchain.nm(arch);
    let mut nm_cmd = Command::new(&nm);
    nm_cmd.current_dir(dir).arg("-n");
    if sized {
        nm_cmd.arg("-S");
    }
    nm_cmd.arg("vmlinux");
    let listing = output(
        nm_cmd,
        &format!("{nm} -n{} vmlinux", if sized { " -S" } else { "" }),
    )?;
    let mut sed = Command::new("sed");
    sed.arg("-f").arg(srctree.join("scripts/mksysmap"));
    let final_map = filter(sed, &listing)?;
    let map_name = if sized {
        format!(".tmp_vmlinux{pass}.sized.syms")
    } else {
        format!(".tmp_vmlinux{pass}.syms")
    };
    let pass_map = fs::read(dir.join(&map_name)).map_err(|e| format!("{map_name}: {e}"))?;
    if final_map != pass_map {
        return Err(format!(
            "the final vmlinux's symbols differ from link pass {pass}'s ({map_name}), from which its kallsyms tables were generated: {}",
            first_difference(&pass_map, &final_map)
        ));
    }
    // The tables the last pass wrote, regenerated from the final map.
    let rust = dir.join("scripts/kallsyms-rs/kallsyms-rs");
    let use_rust = sized
        && config
            .lines()
            .any(|l| l == "CONFIG_KALLSYMS_RUST_GENERATOR=y");
    let generator = if use_rust {
        rust
    } else {
        dir.join("scripts/kallsyms")
    };
    let final_map_file = dir.join(".ksh-link-stable.syms");
    fs::write(&final_map_file, &final_map)
        .map_err(|e| format!("{}: {e}", final_map_file.display()))?;
    let mut gen = Command::new(&generator);
    gen.current_dir(dir);
    if use_rust {
        gen.arg(kernel.rust_generator_format());
    }
    gen.args(generator_options(kernel, &config, sized))
        .arg(&final_map_file);
    let what = format!("{} on the final map", generator.display());
    let tables = output(gen, &what);
    let _ = fs::remove_file(&final_map_file);
    let tables = tables?;
    let s_name = format!(".tmp_vmlinux{pass}.kallsyms.S");
    let linked = fs::read(dir.join(&s_name)).map_err(|e| format!("{s_name}: {e}"))?;
    if tables != linked {
        return Err(format!(
            "the tables generated from the final vmlinux's symbols differ from those linked into it ({s_name}): {}",
            first_difference(&linked, &tables)
        ));
    }
    let symbols = final_map.iter().filter(|&&b| b == b'\n').count();
    Ok(format!(
        "pass {pass} of the link: {symbols} symbols{}, {} bytes of tables equal",
        if sized { " with sizes" } else { "" },
        tables.len()
    ))
}

/// Pipes `input` through `cmd`.
fn filter(mut cmd: Command, input: &[u8]) -> Result<Vec<u8>, String> {
    stdout_of(
        "sed -f scripts/mksysmap",
        crate::process::output_with_input(&mut cmd, input),
    )
}

/// "line N: `A` against `B`" for the first differing line.
fn first_difference(want: &[u8], got: &[u8]) -> String {
    let (w, g) = (String::from_utf8_lossy(want), String::from_utf8_lossy(got));
    let (wl, gl): (Vec<&str>, Vec<&str>) = (w.lines().collect(), g.lines().collect());
    for i in 0..wl.len().max(gl.len()) {
        let (a, b) = (wl.get(i).copied(), gl.get(i).copied());
        if a != b {
            return format!(
                "first at line {}: linked `{}`, final `{}` ({} against {} lines)",
                i + 1,
                a.unwrap_or("<end>"),
                b.unwrap_or("<end>"),
                wl.len(),
                gl.len()
            );
        }
    }
    "they differ in line endings only".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for n in files {
            fs::write(d.path().join(n), "").unwrap();
        }
        d
    }

    #[test]
    fn last_pass_prefers_the_highest_and_the_sized_map() {
        let d = dir_with(&[
            ".tmp_vmlinux.kallsyms0.syms",
            ".tmp_vmlinux1.syms",
            ".tmp_vmlinux1.sized.syms",
            ".tmp_vmlinux2.syms",
            ".tmp_vmlinux2.sized.syms",
        ]);
        assert_eq!(last_pass(d.path()), Some((2, true)));
        let d = dir_with(&[".tmp_vmlinux1.syms", ".tmp_vmlinux3.syms"]);
        assert_eq!(last_pass(d.path()), Some((3, false)));
        assert_eq!(last_pass(dir_with(&[]).path()), None);
    }

    #[test]
    fn options_follow_the_config() {
        let c = "CONFIG_KALLSYMS_ALL=y\nCONFIG_KALLSYMS_ABSOLUTE_PERCPU=y\n";
        assert_eq!(
            generator_options(Kernel::V6_12, c, true),
            [
                "--all-symbols",
                "--absolute-percpu",
                "--symbol-sizes",
                "--compact-sizes"
            ]
        );
        assert!(generator_options(Kernel::V6_12, "", false).is_empty());
    }

    #[test]
    fn a_build_without_passes_fails() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".config"), "CONFIG_KALLSYMS=y\n").unwrap();
        fs::write(d.path().join("vmlinux"), "").unwrap();
        let r = check_built(
            d.path(),
            &crate::cell::arch::X86_64,
            Toolchain::Gcc,
            Kernel::V6_12,
        );
        assert!(
            matches!(&r.outcome, Err(m) if m.contains("nothing to compare")),
            "{r:?}"
        );
    }

    #[test]
    fn difference_names_the_line() {
        let m = first_difference(b"a 1\nb 2\n", b"a 1\nb 3\n");
        assert!(
            m.contains("line 2") && m.contains("`b 2`") && m.contains("`b 3`"),
            "{m}"
        );
    }
}
