//! Debian packages from a suite this machine's apt sources do not list
//! (Linux 7.3's `linux-source-7.3` is in trixie-backports; the machine may
//! be bookworm): `apt-get download` through a private apt configuration in
//! the cache (its own sources list, package lists, cache and an empty dpkg
//! status), then `dpkg-deb -x`. The machine's own apt configuration and
//! package state are never touched, and nothing needs root.
//!
//! Trust is apt's: the private sources list names the Debian archive
//! keyring (`signed-by=`), so `apt-get update` accepts only a suite whose
//! `Release` file that keyring signed, and `apt-get download` accepts only
//! a `.deb` whose hash that `Release` lists (never `trusted=yes`). The
//! mirror is the one this machine's own sources use for Debian's archive
//! (or `KSH_DEBIAN_MIRROR`), so a machine behind a local mirror keeps it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::layout;

/// The keyring that signs Debian's suites (package `debian-archive-keyring`).
pub const ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The machine's apt sources: where its Debian mirror is found.
const APT_SOURCES: [&str; 2] = ["/etc/apt/sources.list", "/etc/apt/sources.list.d"];

/// One package of one Debian suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuitePackage {
    pub package: &'static str,
    pub suite: &'static str,
}

/// A downloaded and unpacked package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The package's version (`7.3.4-1~bpo13+1`).
    pub version: String,
    /// Where `dpkg-deb -x` put its files (`<root>/usr/src/...`).
    pub root: PathBuf,
}

/// Makes `pkg` available unpacked in the cache (fetching it the first
/// time, announced on one line) and returns where. Failures name the
/// package, the suite and the command to retry.
pub fn ensure(pkg: SuitePackage) -> Result<Unpacked> {
    let dir = layout::debian_suite_dir(pkg.suite);
    layout::ensure_dir(&dir)?;
    let _lock = layout::lock(&dir.join(".lock"))?;
    if let Some(done) = read_stamp(&dir, pkg.package) {
        return Ok(done);
    }
    let apt = PrivateApt::new(&dir, &mirror()?)?;
    eprintln!(
        "ksh: fetching {} from Debian's {} suite (apt-get download, private apt lists in {})",
        pkg.package,
        pkg.suite,
        dir.display()
    );
    let debs = dir.join("debs");
    let _ = fs::remove_dir_all(&debs);
    layout::ensure_dir(&debs)?;
    let fetched = (|| -> Result<Unpacked> {
        apt.run(&["update"], &dir)?;
        apt.run(&["download", pkg.package], &debs)?;
        let deb = fs::read_dir(&debs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("apt-get download left no .deb")?;
        let version = deb_version(&deb)?;
        let root = dir.join(format!("{}_{}", pkg.package, version));
        let _ = fs::remove_dir_all(&root);
        crate::process::run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        Ok(Unpacked { version, root })
    })();
    let _ = fs::remove_dir_all(&debs);
    let unpacked = fetched.with_context(|| {
        format!(
            "fetching {} from Debian's {} suite failed; to retry by hand: {}",
            pkg.package,
            pkg.suite,
            apt.retry_line(pkg.package, &dir)
        )
    })?;
    write_stamp(&dir, pkg.package, &unpacked)?;
    Ok(unpacked)
}

/// `<dir>/<package>.stamp`: the version unpacked last, written after the
/// unpacking finished (so a killed fetch is redone).
fn stamp_path(dir: &Path, package: &str) -> PathBuf {
    dir.join(format!("{package}.stamp"))
}

fn read_stamp(dir: &Path, package: &str) -> Option<Unpacked> {
    let version = fs::read_to_string(stamp_path(dir, package)).ok()?;
    let version = version.trim().to_string();
    let root = dir.join(format!("{package}_{version}"));
    root.is_dir().then_some(Unpacked { version, root })
}

fn write_stamp(dir: &Path, package: &str, u: &Unpacked) -> Result<()> {
    let p = stamp_path(dir, package);
    fs::write(&p, format!("{}\n", u.version)).with_context(|| format!("writing {}", p.display()))
}

/// The version in a `.deb`'s control file.
fn deb_version(deb: &Path) -> Result<String> {
    let out = Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .arg("Version")
        .output()
        .context("running dpkg-deb (Debian's dpkg package)")?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || v.is_empty() {
        bail!("{}: no Version field (dpkg-deb --field)", deb.display());
    }
    Ok(v)
}

/// apt-get with every path of its configuration inside `dir`.
struct PrivateApt {
    options: Vec<String>,
}

impl PrivateApt {
    fn new(dir: &Path, mirror: &str) -> Result<PrivateApt> {
        if !Path::new(ARCHIVE_KEYRING).is_file() {
            bail!(
                "{ARCHIVE_KEYRING} is missing: it verifies Debian's suites; \
                 install it with `apt-get install debian-archive-keyring`"
            );
        }
        let etc = dir.join("etc");
        for d in [
            "etc/sources.list.d",
            "etc/preferences.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            layout::ensure_dir(&dir.join(d))?;
        }
        // The suite from the archive's own name: the lines a user would
        // write, with the keyring named.
        let list = etc.join("sources.list");
        fs::write(&list, sources_line(mirror, dir_suite(dir)))
            .with_context(|| format!("writing {}", list.display()))?;
        let status = dir.join("state/status");
        if !status.exists() {
            fs::write(&status, "").with_context(|| format!("writing {}", status.display()))?;
        }
        let opt = |k: &str, v: &Path| format!("-o{k}={}", v.display());
        Ok(PrivateApt {
            options: vec![
                opt("Dir::Etc::SourceList", &list),
                opt("Dir::Etc::SourceParts", &etc.join("sources.list.d")),
                opt("Dir::Etc::Preferences", &etc.join("preferences")),
                opt("Dir::Etc::PreferencesParts", &etc.join("preferences.d")),
                opt("Dir::State", &dir.join("state")),
                opt("Dir::State::Lists", &dir.join("state/lists")),
                opt("Dir::State::status", &status),
                opt("Dir::Cache", &dir.join("cache")),
            ],
        })
    }

    fn command(&self, args: &[&str], cwd: &Path) -> Command {
        let mut c = Command::new("apt-get");
        c.arg("-q").args(&self.options).args(args).current_dir(cwd);
        c
    }

    fn run(&self, args: &[&str], cwd: &Path) -> Result<()> {
        crate::process::run_checked(&mut self.command(args, cwd))
    }

    fn retry_line(&self, package: &str, dir: &Path) -> String {
        format!(
            "cd {} && {} && {}",
            crate::process::shell_word(&dir.join("debs").to_string_lossy()),
            crate::process::shell_line(&self.command(&["update"], dir)),
            crate::process::shell_line(&self.command(&["download", package], dir)),
        )
    }
}

/// The suite a private apt dir is for: its directory name.
fn dir_suite(dir: &Path) -> &str {
    dir.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// The one-line source for `suite` of the archive at `mirror`.
fn sources_line(mirror: &str, suite: &str) -> String {
    format!("deb [signed-by={ARCHIVE_KEYRING}] {mirror} {suite} main\n")
}

/// The Debian archive this machine's apt uses, or `KSH_DEBIAN_MIRROR`.
fn mirror() -> Result<String> {
    if let Ok(m) = std::env::var("KSH_DEBIAN_MIRROR") {
        return Ok(m);
    }
    let mut texts = Vec::new();
    for p in APT_SOURCES {
        let p = Path::new(p);
        if p.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "sources" || x == "list"))
                .collect();
            files.sort();
            for f in files {
                texts.push((f.clone(), fs::read_to_string(&f).unwrap_or_default()));
            }
        } else if let Ok(t) = fs::read_to_string(p) {
            texts.push((p.to_path_buf(), t));
        }
    }
    texts
        .iter()
        .find_map(|(path, text)| debian_mirror_in(path, text))
        .with_context(|| {
            format!(
                "no Debian archive (a `deb` source with component main, not the security \
                 archive) in {}; set KSH_DEBIAN_MIRROR to the archive's URI",
                APT_SOURCES.join(" or ")
            )
        })
}

/// The URI of the first `deb` source in an apt sources file (one-line
/// `.list` or deb822 `.sources`) with component `main` that is not the
/// security archive.
fn debian_mirror_in(path: &Path, text: &str) -> Option<String> {
    let is_archive = |uri: &str, suites: &[&str], components: &[&str]| {
        components.contains(&"main")
            && !uri.trim_end_matches('/').ends_with("-security")
            && !suites.iter().any(|s| s.ends_with("-security"))
    };
    if path.extension().is_some_and(|x| x == "sources") {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            let enabled = field("Enabled").is_none_or(|v| v != "no");
            let types = field("Types").unwrap_or_default();
            let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
                continue;
            };
            let components = field("Components").unwrap_or_default();
            let suites: Vec<&str> = suites.split_whitespace().collect();
            let components: Vec<&str> = components.split_whitespace().collect();
            if !enabled || !types.split_whitespace().any(|t| t == "deb") {
                continue;
            }
            if let Some(uri) = uris
                .split_whitespace()
                .find(|u| is_archive(u, &suites, &components))
            {
                return Some(uri.to_string());
            }
        }
        return None;
    }
    text.lines().find_map(|l| {
        let l = l.split('#').next()?.trim();
        let rest = l.strip_prefix("deb ")?.trim_start();
        // Skip `[option=value ...]`.
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']')?.1.trim_start(),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let (uri, suite) = (words.next()?, words.next()?);
        let components: Vec<&str> = words.collect();
        is_archive(uri, &[suite], &components).then(|| uri.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_comes_from_the_machines_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /k.gpg\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\
                      Components: main\n";
        assert_eq!(
            debian_mirror_in(Path::new("debian.sources"), deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let mut stanzas: Vec<&str> = deb822.split("\n\n").collect();
        stanzas.reverse();
        let security_first = stanzas.join("\n\n");
        assert_eq!(
            debian_mirror_in(Path::new("debian.sources"), &security_first).as_deref(),
            Some("http://mirror.example/debian")
        );
        let disabled =
            "Enabled: no\nTypes: deb\nURIs: http://a/debian\nSuites: x\nComponents: main\n";
        assert_eq!(debian_mirror_in(Path::new("a.sources"), disabled), None);
        let one_line = "# comment\ndeb-src http://src/debian bookworm main\n\
                        deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib\n";
        assert_eq!(
            debian_mirror_in(Path::new("sources.list"), one_line).as_deref(),
            Some("http://m/debian")
        );
        let no_main = "deb http://m/debian bookworm contrib\n";
        assert_eq!(debian_mirror_in(Path::new("sources.list"), no_main), None);
    }

    #[test]
    fn the_private_list_names_the_keyring() {
        assert_eq!(
            sources_line("http://m/debian", "trixie-backports"),
            format!("deb [signed-by={ARCHIVE_KEYRING}] http://m/debian trixie-backports main\n")
        );
        assert_eq!(
            dir_suite(Path::new("/c/debian/trixie-backports")),
            "trixie-backports"
        );
    }

    /// A real fetch from the machine's Debian mirror: Linux 7.3's source
    /// package from trixie-backports (about 170 MB, once per cache).
    #[test]
    #[ignore = "needs Debian's archive (network)"]
    fn fetches_linux_source_7_3() {
        let u = ensure(SuitePackage {
            package: "linux-source-7.3",
            suite: "trixie-backports",
        })
        .unwrap();
        assert!(u.version.starts_with("7.3"), "{}", u.version);
        assert!(u.root.join("usr/src/linux-source-7.3.tar.xz").is_file());
        // The second call uses the cache.
        let again = ensure(SuitePackage {
            package: "linux-source-7.3",
            suite: "trixie-backports",
        })
        .unwrap();
        assert_eq!(again, u);
    }
}
