//! Kconfig fragments: which ones make up a configuration, merging them over
//! `tinyconfig` (or the base a variant names) with the kernel's own `merge_config.sh`, and checking that
//! every requested option landed with the requested value.
//!
//! Fragments live in `kernel-configs/`: `common.config`, `series.config`
//! (the options the series adds, excused where a tree lacks them), one per arch
//! (`x86_64.config`, `arm64.config`) and named variants under `variants/`
//! (`--config NAME` picks `variants/NAME.config`). Later fragments win.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cell::arch::ArchProfile;
use crate::layout;

/// The value a fragment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `CONFIG_X=y`, `=m`, `=123`, `="str"`: the text after `=`.
    Set(String),
    /// `# CONFIG_X is not set`.
    NotSet,
}

/// Options by name (without `CONFIG_`), in the order first seen.
pub type Options = BTreeMap<String, Value>;

/// Parses a fragment or a `.config`. Other comments and blank lines are
/// ignored; anything else is an error naming the line.
pub fn parse(text: &str, origin: &Path) -> Result<Options> {
    let mut out = Options::new();
    for (no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                out.insert(name.to_string(), Value::NotSet);
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        match line.strip_prefix("CONFIG_").and_then(|r| r.split_once('=')) {
            Some((name, value)) if !name.is_empty() => {
                out.insert(name.to_string(), Value::Set(value.to_string()));
            }
            _ => bail!("{}:{}: not a Kconfig line: {raw}", origin.display(), no + 1),
        }
    }
    Ok(out)
}

/// The configuration variants that exist (`variants/*.config`), sorted.
pub fn variant_names() -> Result<Vec<String>> {
    let dir = layout::kernel_configs_dir().join("variants");
    let mut names = Vec::new();
    for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "config") {
            names.push(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The architectures a variant applies to: `None` for all, or the list
/// its fragment names in a `# arches: a, b` line (a variant such as `up`
/// asks for something one arch cannot have).
pub fn variant_arches(variant: &str) -> Result<Option<Vec<String>>> {
    let path = variant_path(variant)?;
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().find_map(|l| {
        l.strip_prefix("# arches:").map(|list| {
            list.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        })
    }))
}

/// Whether `variant` applies to `arch`.
pub fn variant_applies(variant: &str, arch: &ArchProfile) -> Result<bool> {
    Ok(variant_arches(variant)?.is_none_or(|list| list.iter().any(|a| a == arch.name)))
}

/// The `make` targets the variant starts from, in order, before the
/// fragments are merged: `tinyconfig` unless its fragment names others in
/// a `# base:` line (`defconfig mod2noconfig`: the arch's defconfig with
/// its modules left out, for a real-size kernel).
pub fn base_targets(variant: &str) -> Result<Vec<String>> {
    let path = variant_path(variant)?;
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let targets: Vec<String> = match text.lines().find_map(|l| l.strip_prefix("# base:")) {
        None => vec!["tinyconfig".to_string()],
        Some(list) => list.split_whitespace().map(str::to_string).collect(),
    };
    const KNOWN: &[&str] = &["tinyconfig", "allnoconfig", "defconfig", "mod2noconfig"];
    if targets.is_empty() || targets.iter().any(|t| !KNOWN.contains(&t.as_str())) {
        bail!(
            "{}: '# base: {}': not a list of config targets ({})",
            path.display(),
            targets.join(" "),
            KNOWN.join(", ")
        );
    }
    Ok(targets)
}

/// Extra `make` variables of the variant (`# make: KALLSYMS_EXTRA_PASS=1`:
/// what Kconfig cannot express), passed to every make of its build dir.
pub fn make_vars(variant: &str) -> Result<Vec<String>> {
    let path = variant_path(variant)?;
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut vars = Vec::new();
    for list in text.lines().filter_map(|l| l.strip_prefix("# make:")) {
        for v in list.split_whitespace() {
            let ok = v.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.bytes()
                        .all(|c| c.is_ascii_uppercase() || c == b'_' || c.is_ascii_digit())
            });
            if !ok {
                bail!(
                    "{}: '# make: {v}': not a make variable assignment (NAME=VALUE)",
                    path.display()
                );
            }
            vars.push(v.to_string());
        }
    }
    Ok(vars)
}

/// The fragment of a variant (the toolchain does not change the
/// fragments: `CellId::variant`, not its label).
fn variant_path(variant: &str) -> Result<PathBuf> {
    let path = layout::kernel_configs_dir()
        .join("variants")
        .join(format!("{variant}.config"));
    if !path.is_file() {
        bail!(
            "unknown config '{variant}'; valid: {}",
            variant_names()?.join(", ")
        );
    }
    Ok(path)
}

/// The fragments for one (arch, variant), in merge order.
pub fn fragments(arch: &ArchProfile, variant: &str) -> Result<Vec<PathBuf>> {
    let dir = layout::kernel_configs_dir();
    let variant_path = variant_path(variant)?;
    if let Some(list) = variant_arches(variant)? {
        if !list.iter().any(|a| a == arch.name) {
            bail!(
                "config '{variant}' applies to {} only, not {}",
                list.join(", "),
                arch.name
            );
        }
    }
    Ok(vec![
        dir.join("common.config"),
        dir.join(SERIES_FRAGMENT),
        dir.join(arch.config_fragment),
        variant_path,
    ])
}

/// What the fragments ask for, merged (later fragments win), plus a digest of
/// their bytes for "reconfigure only when the fragments changed".
pub fn requested(fragments: &[PathBuf]) -> Result<(Options, String)> {
    let mut merged = Options::new();
    let mut bytes = Vec::new();
    for f in fragments {
        let text = fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        merged.extend(parse(&text, f)?);
        bytes.push(text.into_bytes());
    }
    let parts: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    Ok((merged, layout::digest(&parts)))
}

/// A requested option that did not land as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub name: String,
    pub wanted: Value,
    pub got: Option<Value>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| match v {
            Some(Value::Set(s)) => format!("CONFIG_{}={s}", self.name),
            Some(Value::NotSet) | None => format!("CONFIG_{} not set", self.name),
        };
        write!(
            f,
            "wanted {}, got {}",
            show(&Some(self.wanted.clone())),
            show(&self.got)
        )
    }
}

/// Compares what was requested with the resulting `.config`. An option the
/// `.config` does not mention counts as "not set" (Kconfig omits options
/// whose dependencies are off).
pub fn verify(requested: &Options, actual: &Options) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (name, wanted) in requested {
        let got = actual.get(name).cloned();
        let ok = match (wanted, &got) {
            (Value::NotSet, None | Some(Value::NotSet)) => true,
            (Value::Set(w), Some(Value::Set(g))) => w == g,
            _ => false,
        };
        if !ok {
            out.push(Mismatch {
                name: name.clone(),
                wanted: wanted.clone(),
                got,
            });
        }
    }
    out
}

/// The fragment of the options the kallsyms series adds (see
/// [`excuse_undeclared`]).
pub const SERIES_FRAGMENT: &str = "series.config";

/// Drops from `mismatches` the options of [`SERIES_FRAGMENT`] that no
/// Kconfig file of `tree` declares (a tree without the series cannot have
/// them: the baseline, a series prefix, a user's tree); every other
/// mismatch stays, so a misspelled option in any fragment is still an
/// error. Returns the names it excused.
///
/// On the whole series (`whole_series`, Debian's patched source) nothing
/// is excused: an undeclared series option there means a patch stopped
/// declaring it, and the kernel would be built without the feature (the
/// Rust generator, its comparison with the C one) while its cases turned
/// into skips. That is an error naming the option.
pub fn excuse_undeclared(
    mismatches: &mut Vec<Mismatch>,
    tree: &Path,
    whole_series: bool,
) -> Result<Vec<String>> {
    excuse_undeclared_in(
        mismatches,
        tree,
        whole_series,
        &layout::kernel_configs_dir().join(SERIES_FRAGMENT),
    )
}

fn excuse_undeclared_in(
    mismatches: &mut Vec<Mismatch>,
    tree: &Path,
    whole_series: bool,
    path: &Path,
) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let series = parse(&text, path)?;
    let candidates: Vec<String> = mismatches
        .iter()
        .filter(|m| series.contains_key(&m.name))
        .map(|m| m.name.clone())
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let declared = declared_options(tree, &candidates)?;
    let excused: Vec<String> = candidates
        .into_iter()
        .filter(|n| !declared.contains(n))
        .collect();
    if whole_series && !excused.is_empty() {
        bail!(
            "no Kconfig file of {} declares {} (asked for by {}): the source has the whole series, so a patch of it stopped declaring the option{}, and the kernel would lose the feature silently",
            tree.display(),
            excused
                .iter()
                .map(|n| format!("CONFIG_{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            path.display(),
            if excused.len() > 1 { "s" } else { "" }
        );
    }
    mismatches.retain(|m| !excused.contains(&m.name));
    Ok(excused)
}

/// Which of `names` some `Kconfig*` file under `tree` declares
/// (`config NAME` or `menuconfig NAME` at the start of a line).
fn declared_options(tree: &Path, names: &[String]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(_) => continue,
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && !name.starts_with('.') {
                stack.push(e.path());
            } else if ft.is_file() && name.starts_with("Kconfig") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                for line in text.lines() {
                    let decl = line
                        .strip_prefix("config ")
                        .or_else(|| line.strip_prefix("menuconfig "));
                    if let Some(n) = decl.map(str::trim) {
                        if names.iter().any(|w| w == n) && !found.iter().any(|f: &String| f == n) {
                            found.push(n.to_string());
                        }
                    }
                }
            }
        }
    }
    Ok(found)
}

/// How many objects a cold build of `variant` compiles on `arch`, from
/// `kernel-configs/objects-estimate.txt` (`minimal`'s figure for a variant
/// it does not list): the first build's progress estimate. Kept out of the
/// fragments, whose bytes key the build dir's configuration.
pub fn objects_estimate(arch: &ArchProfile, variant: &str) -> Option<u64> {
    let path = layout::project_root().join("kernel-configs/objects-estimate.txt");
    let text = std::fs::read_to_string(path).ok()?;
    let find = |v: &str| {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            match l.split_whitespace().collect::<Vec<_>>()[..] {
                [c, a, n] if c == v && a == arch.name => n.parse().ok(),
                _ => None,
            }
        })
    };
    find(variant).or_else(|| find("minimal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(text: &str) -> Options {
        parse(text, Path::new("test.config")).unwrap()
    }

    #[test]
    fn undeclared_series_options_are_excused_only_off_the_whole_series() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(tree.join("init")).unwrap();
        fs::write(tree.join("init/Kconfig"), "config KEPT\n\tbool \"kept\"\n").unwrap();
        let fragment = d.path().join("series.config");
        fs::write(&fragment, "CONFIG_KEPT=y\nCONFIG_LOST=y\n").unwrap();
        let wanted = opts("CONFIG_KEPT=y\nCONFIG_LOST=y\nCONFIG_OTHER=y\n");
        let got = opts("# CONFIG_KEPT is not set\n");
        let mismatches = verify(&wanted, &got);
        assert_eq!(mismatches.len(), 3);

        // The baseline, a series prefix, a user's tree: excused, and the
        // declared option and the one outside the series stay errors.
        let mut m = mismatches.clone();
        let excused = excuse_undeclared_in(&mut m, &tree, false, &fragment).unwrap();
        assert_eq!(excused, ["LOST"]);
        let left: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(left, ["KEPT", "OTHER"]);

        // The whole series: an error naming the option.
        let mut m = mismatches.clone();
        let e = format!(
            "{:#}",
            excuse_undeclared_in(&mut m, &tree, true, &fragment).unwrap_err()
        );
        assert!(
            e.contains("CONFIG_LOST") && !e.contains("CONFIG_KEPT"),
            "{e}"
        );
    }

    #[test]
    fn parses_set_unset_and_comments() {
        let o = opts(
            "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n\nCONFIG_D=0x10\n",
        );
        assert_eq!(o["A"], Value::Set("y".into()));
        assert_eq!(o["B"], Value::NotSet);
        assert_eq!(o["C"], Value::Set("\"x y\"".into()));
        assert_eq!(o["D"], Value::Set("0x10".into()));
    }

    #[test]
    fn rejects_garbage_with_line_number() {
        let err = parse("CONFIG_A=y\nFOO\n", Path::new("frag.config"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("frag.config:2"), "{err}");
    }

    #[test]
    fn later_fragments_win() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.config");
        let b = dir.path().join("b.config");
        fs::write(&a, "CONFIG_SMP=y\nCONFIG_X=y\n").unwrap();
        fs::write(&b, "# CONFIG_SMP is not set\n").unwrap();
        let (merged, digest1) = requested(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(merged["SMP"], Value::NotSet);
        assert_eq!(merged["X"], Value::Set("y".into()));
        fs::write(&b, "CONFIG_SMP=y\n").unwrap();
        let (_, digest2) = requested(&[a, b]).unwrap();
        assert_ne!(digest1, digest2, "a fragment edit must change the digest");
    }

    #[test]
    fn verify_lists_every_option_that_did_not_land() {
        let want = opts("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=\"s\"\n# CONFIG_E is not set\n");
        let got = opts("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_D=\"t\"\n");
        let m = verify(&want, &got);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["B", "C", "D"]);
        assert_eq!(m[0].to_string(), "wanted CONFIG_B=y, got CONFIG_B not set");
    }

    #[test]
    fn arch_restricted_variants() {
        assert!(variant_applies("minimal", &crate::cell::arch::ARM64).unwrap());
        assert_eq!(
            variant_arches("up").unwrap(),
            Some(vec!["x86_64".to_string()])
        );
        assert!(!variant_applies("up", &crate::cell::arch::ARM64).unwrap());
        let err = fragments(&crate::cell::arch::ARM64, "up")
            .unwrap_err()
            .to_string();
        assert!(err.contains("applies to x86_64 only"), "{err}");
    }

    #[test]
    fn real_fragments_parse_for_every_arch_and_variant() {
        for arch in crate::cell::arch::ALL {
            for v in variant_names().unwrap() {
                if !variant_applies(&v, arch).unwrap() {
                    continue;
                }
                let frags = fragments(arch, &v).unwrap();
                let (merged, _) = requested(&frags).unwrap();
                assert_eq!(merged.get("KALLSYMS"), Some(&Value::Set("y".into())));
            }
        }
        let err = fragments(&crate::cell::arch::X86_64, "nope")
            .unwrap_err()
            .to_string();
        assert!(err.contains("valid: ") && err.contains("minimal"), "{err}");
    }

    #[test]
    fn base_targets_of_the_variants() {
        for v in variant_names().unwrap() {
            assert!(!base_targets(&v).unwrap().is_empty(), "{v}");
        }
        assert_eq!(base_targets("minimal").unwrap(), ["tinyconfig"]);
        assert!(make_vars("minimal").unwrap().is_empty());
        assert_eq!(
            make_vars("defconfig-extra-pass").unwrap(),
            ["KALLSYMS_EXTRA_PASS=1"]
        );
        assert_eq!(
            base_targets("defconfig").unwrap(),
            ["defconfig", "mod2noconfig"]
        );
    }
}
