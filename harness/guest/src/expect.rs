//! Reading the host's expectation files (`ksh_proto::files`, under
//! `/ksh/expect`): their text, the few lookups several probes share (the
//! module's functions, the build's facts, addresses of the expected table,
//! groups of `sizes.txt`), and whether a case applies to this build.

use ksh_proto::files::Line as _;

/// The text of an expectation file (decode it with `ksh_proto::files`).
pub fn expect_text(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// `module-syms.txt`: (name, ELF size) of the probe module's functions.
pub fn module_syms() -> Result<Vec<(String, u64)>, String> {
    let text = expect_text(ksh_proto::files::FileId::ModuleSyms.path())?;
    Ok(
        ksh_proto::files::decode::<ksh_proto::files::ModuleSymLine>(&text)?
            .into_iter()
            .map(|m| (m.name.to_string(), m.size))
            .collect(),
    )
}

/// `key=value` facts of the build (lines that do not parse are left out).
pub fn build_info() -> ksh_proto::files::BuildInfo {
    let text = expect_text(ksh_proto::files::FileId::BuildInfo.path()).unwrap_or_default();
    ksh_proto::files::BuildInfo {
        facts: text
            .lines()
            .filter_map(|l| ksh_proto::files::BuildInfoLine::parse(l).ok())
            .map(|b| (b.key.to_string(), b.value.to_string()))
            .collect(),
    }
}

/// Link-time addresses of `names` in the expected kallsyms table (one pass).
pub fn expected_addresses(names: &[&str]) -> Result<Vec<u64>, String> {
    names
        .iter()
        .zip(expected_addresses_if_any(names)?)
        .map(|(n, a)| {
            a.ok_or_else(|| {
                format!(
                    "{n} is not in {}",
                    ksh_proto::files::FileId::Kallsyms.path()
                )
            })
        })
        .collect()
}

/// Like [`expected_addresses`], `None` for a name the table does not have.
pub fn expected_addresses_if_any(names: &[&str]) -> Result<Vec<Option<u64>>, String> {
    let mut found: Vec<Option<u64>> = vec![None; names.len()];
    let text = expect_text(ksh_proto::files::FileId::Kallsyms.path())?;
    // Stops at the last name found: `_text` is near the top.
    let mut left = names.len();
    for (n, l) in text.lines().enumerate() {
        let k = ksh_proto::files::KallsymsLine::parse(l).map_err(|e| {
            format!(
                "{}:{}: {e}: {l:?}",
                ksh_proto::files::FileId::Kallsyms.path(),
                n + 1
            )
        })?;
        if let Some(i) = names.iter().position(|&x| x == k.name) {
            if found[i].is_none() {
                found[i] = Some(k.addr);
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// Symbols of `sizes.txt`, grouped by link-time address.
pub struct Group {
    pub addr: u64,
    /// Every kallsyms name at the address (sized or not), in table order.
    pub names: Vec<String>,
    /// (name, ELF size, another symbol starts inside), in table order.
    pub sized: Vec<(String, u64, bool)>,
}

impl Group {
    /// Sizes the kernel may report for a lookup that named `reported`: that
    /// alias's own size if it is sized, else any sized alias's size.
    pub fn accepted_sizes(&self, reported: &str) -> Vec<u64> {
        match self.sized.iter().find(|s| s.0 == reported) {
            Some(s) => vec![s.1],
            None => self.sized.iter().map(|s| s.1).collect(),
        }
    }
    pub fn label(&self) -> String {
        match self.sized.first() {
            Some((n, s, _)) if self.names.len() == 1 => {
                format!("{n} ({:#x}, size {s:#x})", self.addr)
            }
            _ => format!("{} ({:#x})", self.names.join("="), self.addr),
        }
    }
}

impl From<&ksh_proto::sizes::SizeGroup<'_>> for Group {
    fn from(g: &ksh_proto::sizes::SizeGroup<'_>) -> Group {
        Group {
            addr: g.addr,
            names: g.names.iter().map(|n| n.to_string()).collect(),
            sized: g
                .sized
                .iter()
                .map(|&(n, s, x)| (n.to_string(), s, x))
                .collect(),
        }
    }
}

/// The groups of `sizes.txt` at the link-time addresses `keep` accepts
/// (parsed by the contract's own parser, `ksh_proto::sizes::parse`). Most
/// callers want a few hundred of 60k+ lines: each line's address is read
/// first and only the kept lines are parsed (a full parse and grouping of
/// the file cost a large part of a probe's time under TCG).
pub fn size_groups_where(keep: impl Fn(u64) -> bool) -> Result<Vec<Group>, String> {
    let text = std::fs::read_to_string(ksh_proto::files::FileId::Sizes.path())
        .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::Sizes.path()))?;
    let mut kept = String::new();
    for l in text.lines() {
        let addr = l.split(' ').next().unwrap_or("");
        // A line whose address does not parse is kept: the parser reports it.
        if u64::from_str_radix(addr, 16).map_or(true, &keep) {
            kept.push_str(l);
            kept.push('\n');
        }
    }
    Ok(ksh_proto::sizes::parse(&kept)?
        .iter()
        .map(Group::from)
        .collect())
}

/// Why `probe/case` does not apply to this build (registry data evaluated
/// against the build info), or None.
pub fn not_applicable(probe: &str, case: &str) -> Option<&'static str> {
    let info = build_info();
    ksh_proto::not_applicable(probe, case, crate::sys::arch(), &|k| {
        info.get(k).map(str::to_string)
    })
}
