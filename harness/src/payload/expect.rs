//! Expectations: what the guest probes compare the kernel's answers with,
//! computed on the host from the build (vmlinux, objects, .config) and
//! shipped in the initramfs under `ksh_proto::EXPECT_DIR`, together with the
//! probe module. The guest side stays simple: it reads these files and
//! compares. Every file is written with its record type of
//! `ksh_proto::files` (the guest reads it with the same type); addresses
//! are link-time (the guest adds the KASLR offset it reads from
//! `/proc/kallsyms`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};

use crate::cell::arch::ArchProfile;
use crate::kernel::kbuild::Built;
use crate::payload::initramfs::GuestFile;
use crate::symbols::{self, Binding, GapClass, KallsymsEntry, SymKind};
use ksh_proto::files::{
    self, BuildInfoLine, FormatPsLine, KallsymsLine, KprobeKind, KprobeLine, ModuleSymLine,
    OrphanLine, SizesLine, WeakKeptLine,
};

mod consumers;

pub use ksh_proto::FIXTURE_PREFIX;

/// One in how many eligible text functions the `format-pS` probe samples
/// (besides every function that ends before a gap).
pub const FORMAT_SAMPLE_EVERY: usize = 97;

/// Every file the guest needs besides `/init`, for the build `built`:
/// expectation files plus the probe module.
pub fn guest_files(arch: &ArchProfile, built: &Built) -> Result<Vec<GuestFile>> {
    let ko = crate::payload::probemod::build(arch, built)?;
    let cache = built.dir.join("ksh-expect-cache");
    let key = cache_key(built, &ko);
    if let Some(files) = key.as_deref().and_then(|k| load_cached(&cache, k)) {
        return Ok(files);
    }
    let ko_bytes = std::fs::read(&ko).with_context(|| format!("reading {}", ko.display()))?;
    let started = std::time::Instant::now();
    let exp = Expectations::compute(arch, &built.dir, &built.vmlinux, Some(&ko))?;
    // The host's cost at this kernel's size (a figure for real-size cells).
    let took = format!(
        "computed on the host in {} ms\n",
        started.elapsed().as_millis()
    );
    let summary_path = built.dir.join("ksh-expect-summary.txt");
    std::fs::write(&summary_path, exp.summary() + &took)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    let mut files = exp.files();
    files.push(GuestFile {
        path: ksh_proto::MODULE_PATH.into(),
        mode: 0o644,
        data: ko_bytes,
    });
    if let Some(k) = &key {
        // A cache that cannot be written only costs the next run time.
        let _ = store_cached(&cache, k, &files);
    }
    Ok(files)
}

/// What the expectations are computed from: the kernel, its configuration
/// and objects' link (vmlinux), the module, and the harness binary itself
/// (whose code derives them). Sizes and mtimes stand in for contents:
/// reading vmlinux to hash it would cost most of what the cache saves.
fn cache_key(built: &Built, ko: &Path) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for p in [
        &built.vmlinux,
        &built.dir.join(".config"),
        &ko.to_path_buf(),
        &exe,
    ] {
        let m = std::fs::metadata(p).ok()?;
        let t = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        parts.push(format!("{} {} {}", p.display(), m.len(), t.as_nanos()).into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    Some(crate::layout::digest(&refs))
}

/// The cached files: `key` names the inputs, `files` holds each file as
/// `MODE PATH LEN\n` and LEN bytes.
fn load_cached(dir: &Path, key: &str) -> Option<Vec<GuestFile>> {
    if std::fs::read_to_string(dir.join("key")).ok()?.trim() != key {
        return None;
    }
    let data = std::fs::read(dir.join("files")).ok()?;
    let mut files = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&rest[..nl]).ok()?;
        let mut f = head.splitn(3, ' ');
        let (mode, len, path) = (f.next()?, f.next()?, f.next()?);
        let (mode, len): (u32, usize) = (mode.parse().ok()?, len.parse().ok()?);
        let body = rest.get(nl + 1..nl + 1 + len)?;
        files.push(GuestFile {
            path: path.to_string(),
            mode,
            data: body.to_vec(),
        });
        rest = &rest[nl + 1 + len..];
    }
    Some(files)
}

fn store_cached(dir: &Path, key: &str, files: &[GuestFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut data = Vec::new();
    for f in files {
        data.extend_from_slice(format!("{} {} {}\n", f.mode, f.data.len(), f.path).as_bytes());
        data.extend_from_slice(&f.data);
    }
    // The key goes last: a run interrupted in between leaves a stale key,
    // which simply misses.
    let _ = std::fs::remove_file(dir.join("key"));
    std::fs::write(dir.join("files"), data)?;
    std::fs::write(dir.join("key"), key)
}

/// Everything the probes need, as computed text plus counts for the summary.
#[derive(Debug, Default)]
pub struct Expectations {
    pub kallsyms: String,
    pub build_info: String,
    pub sizes: String,
    /// `sizes.txt` as check records (`ksh_proto::sizes::plan`) and counts.
    pub sizes_check: Vec<u8>,
    pub sizes_counts: String,
    pub orphans: String,
    pub weak_kept: String,
    pub format_ps: String,
    pub module_syms: String,
    pub kprobes: String,
    pub blacklist: String,
    pub nested: String,
    pub unsized_syms: String,
    /// ftrace.txt (empty without `CONFIG_DYNAMIC_FTRACE`).
    pub ftrace: String,
    /// Whether a probe module was given (then `module_syms` must not be empty).
    pub has_module: bool,
    /// Human-readable facts (counts, gaps by class) for the report.
    pub notes: Vec<String>,
}

/// The address range `is_ksym_addr()` accepts (6.12): `[_stext, _end]` with
/// `CONFIG_KALLSYMS_ALL`, else `[_stext, _etext)` and `[_sinittext, _einittext)`.
struct KsymRange {
    ranges: Vec<(u64, u64)>,
}

impl KsymRange {
    fn new(syms: &[symbols::ElfSymbol], all: bool) -> Result<Self> {
        let a = |n: &str| symbols::symbol_address_in(syms, n);
        let ranges = if all {
            vec![(a("_stext")?, a("_end")? + 1)]
        } else {
            vec![
                (a("_stext")?, a("_etext")?),
                (a("_sinittext")?, a("_einittext")?),
            ]
        };
        Ok(KsymRange { ranges })
    }
    fn contains(&self, addr: u64) -> bool {
        self.ranges.iter().any(|&(lo, hi)| addr >= lo && addr < hi)
    }
}

fn config_value(config: &str, key: &str) -> Option<String> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
}

/// What every expectation file is derived from: one build's table, ELF
/// symbols and configuration.
struct Inputs<'a> {
    build_dir: &'a Path,
    vmlinux: &'a Path,
    config: String,
    table: Vec<KallsymsEntry>,
    elf_syms: Vec<symbols::ElfSymbol>,
    range: KsymRange,
    /// Sorted unique addresses of every table entry, for nesting tests.
    starts: Vec<u64>,
}

impl<'a> Inputs<'a> {
    fn read(build_dir: &'a Path, vmlinux: &'a Path) -> Result<Self> {
        let config_path = build_dir.join(".config");
        let config = std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let opts = symbols::kallsyms_options_from_config(&config_path)?;
        let table = symbols::expected_kallsyms(vmlinux, &opts)
            .with_context(|| format!("deriving the kallsyms table from {}", vmlinux.display()))?;
        let elf_syms = symbols::read_elf_symbols(vmlinux)?;
        let range = KsymRange::new(&elf_syms, opts.all_symbols)?;
        let mut starts: Vec<u64> = table
            .iter()
            .filter(|t| !t.percpu_absolute)
            .map(|t| t.addr)
            .collect();
        starts.sort_unstable();
        starts.dedup();
        Ok(Inputs {
            build_dir,
            vmlinux,
            config,
            table,
            elf_syms,
            range,
            starts,
        })
    }

    /// Whether another symbol starts inside `[t.addr, t.addr + size)`.
    fn nested(&self, t: &KallsymsEntry, size: u64) -> bool {
        let i = self.starts.partition_point(|&a| a <= t.addr);
        self.starts.get(i).is_some_and(|&a| a < t.addr + size)
    }

    /// Whether the kernel looks `t` up (in `is_ksym_addr()`'s range).
    fn eligible(&self, t: &KallsymsEntry) -> bool {
        !t.percpu_absolute
            && self.range.contains(t.addr)
            && t.size.is_none_or(|s| self.range.contains(t.addr + s - 1))
    }

    /// The eligible entries by address.
    fn groups(&self) -> BTreeMap<u64, Vec<&KallsymsEntry>> {
        let mut groups: BTreeMap<u64, Vec<&KallsymsEntry>> = BTreeMap::new();
        for t in self.table.iter().filter(|t| self.eligible(t)) {
            groups.entry(t.addr).or_default().push(t);
        }
        groups
    }
}

impl Expectations {
    /// Computes all expectations of a build dir (`vmlinux` inside it) and,
    /// if given, of the built probe module: one function per file, each
    /// writing the records of `ksh_proto::files`.
    pub fn compute(
        arch: &ArchProfile,
        build_dir: &Path,
        vmlinux: &Path,
        ko: Option<&Path>,
    ) -> Result<Self> {
        let mut e = Expectations::default();
        let inp = Inputs::read(build_dir, vmlinux)?;
        e.kallsyms_file(&inp);
        e.build_info_file(&inp)?;
        e.sizes_files(&inp)?;
        e.orphans_file(&inp)?;
        let gaps = symbols::text_gaps(vmlinux)?;
        e.note_gaps(&gaps);
        e.weak_kept_file(&inp);
        e.format_ps_file(&inp, &gaps);
        e.kprobes_file(&inp, &gaps);
        e.consumer_files(&inp, arch)?;
        if let Some(ko) = ko {
            e.module_syms_file(ko)?;
        }
        // The fixture's object is in the build dir when its patch is in
        // the tree (always with Debian's source; a --kernel-tree may lack
        // it, and then the probes' own "0 checked" failures say so).
        let has_fixture = build_dir.join("kernel/kallsyms_weak_fixture.o").is_file();
        e.check_guaranteed(has_fixture)?;
        Ok(e)
    }

    /// kallsyms.txt: the whole expected table.
    fn kallsyms_file(&mut self, inp: &Inputs) {
        for t in &inp.table {
            files::push(
                &mut self.kallsyms,
                &KallsymsLine {
                    addr: t.addr,
                    ty: t.ty as char,
                    name: &t.name,
                },
            );
        }
    }

    /// build-info.txt: release, symbol count, options, the anchor's address.
    fn build_info_file(&mut self, inp: &Inputs) -> Result<()> {
        let release = std::fs::read_to_string(inp.build_dir.join("include/config/kernel.release"))
            .unwrap_or_default();
        let yes = |k: &str| config_value(&inp.config, k).as_deref() == Some("y");
        let mut facts = vec![
            ("kernel_release".to_string(), release.trim().to_string()),
            (
                ksh_proto::SYMBOLS_KEY.to_string(),
                inp.table.len().to_string(),
            ),
        ];
        for (k, opt) in [
            ("kallsyms_all", "CONFIG_KALLSYMS_ALL"),
            ("kprobes", "CONFIG_KPROBES"),
            ("dynamic_ftrace", "CONFIG_DYNAMIC_FTRACE"),
            ("function_tracer", "CONFIG_FUNCTION_TRACER"),
            ("modules", "CONFIG_MODULES"),
            ("randomize_base", "CONFIG_RANDOMIZE_BASE"),
            ("kallsyms_selftest", "CONFIG_KALLSYMS_SELFTEST"),
            (
                "kallsyms_rust_generator_check",
                "CONFIG_KALLSYMS_RUST_GENERATOR_CHECK",
            ),
        ] {
            facts.push((k.to_string(), if yes(opt) { "1" } else { "0" }.to_string()));
        }
        // The link-time address of the anchor the probe module reports at
        // run time: an offset independent of kallsyms (ksh_proto::ANCHOR_SYMBOL).
        let anchor = symbols::symbol_address_in(&inp.elf_syms, ksh_proto::ANCHOR_SYMBOL)
            .with_context(|| {
                format!("{} in {}", ksh_proto::ANCHOR_SYMBOL, inp.vmlinux.display())
            })?;
        facts.push((
            ksh_proto::ANCHOR_LINK_KEY.to_string(),
            format!("{anchor:x}"),
        ));
        for (key, value) in &facts {
            files::push(&mut self.build_info, &BuildInfoLine { key, value });
        }
        Ok(())
    }

    /// sizes.txt (groups with at least one sized symbol), and the same plan
    /// the guest would make from it, encoded once here (sizes-check.bin,
    /// sizes-counts.txt): on a passing kernel the guest never parses
    /// sizes.txt.
    fn sizes_files(&mut self, inp: &Inputs) -> Result<()> {
        let groups = inp.groups();
        let (mut n_sized, mut n_nested, mut n_addrs) = (0usize, 0usize, 0usize);
        for (&addr, g) in &groups {
            if !g.iter().any(|t| t.size.is_some()) {
                continue;
            }
            n_addrs += 1;
            for t in g {
                let sized = t.size.map(|s| (s, inp.nested(t, s)));
                if let Some((_, n)) = sized {
                    n_sized += 1;
                    n_nested += n as usize;
                }
                files::push(
                    &mut self.sizes,
                    &SizesLine {
                        addr,
                        sized,
                        name: &t.name,
                    },
                );
            }
        }
        let size_groups = ksh_proto::sizes::parse(&self.sizes).map_err(anyhow::Error::msg)?;
        let plan = ksh_proto::sizes::plan(&size_groups);
        for r in &plan.records {
            r.encode(&mut self.sizes_check);
        }
        self.sizes_counts = ksh_proto::sizes::counts_line(&plan);
        for (key, value) in [
            (ksh_proto::SIZED_SYMBOLS_KEY, n_sized),
            (ksh_proto::SIZED_ADDRESSES_KEY, n_addrs),
        ] {
            files::push(
                &mut self.build_info,
                &BuildInfoLine {
                    key,
                    value: &value.to_string(),
                },
            );
        }
        self.notes.push(format!(
            "sizes: {n_addrs} addresses, {n_sized} sized symbols ({n_nested} with another symbol inside)"
        ));
        Ok(())
    }

    /// orphans.txt: the orphaned weak bodies of the objects.
    fn orphans_file(&mut self, inp: &Inputs) -> Result<()> {
        let build_dir = inp.build_dir;
        let search = symbols::orphan_search(build_dir).with_context(|| {
            format!("searching orphaned weak bodies in {}", build_dir.display())
        })?;
        let orphans = &search.orphans;
        for o in orphans {
            let obj = o.object.strip_prefix(build_dir).unwrap_or(&o.object);
            let object = obj.display().to_string();
            files::push(
                &mut self.orphans,
                &OrphanLine {
                    start: o.start,
                    end: o.end,
                    name: &o.name,
                    preceding: (!o.preceding_symbol.is_empty())
                        .then_some(o.preceding_symbol.as_str()),
                    object: &object,
                },
            );
        }
        let n_fixture = orphans
            .iter()
            .filter(|o| o.name.starts_with(FIXTURE_PREFIX))
            .count();
        for (key, value) in [
            (
                ksh_proto::WEAK_OVERRIDDEN_KEY,
                (orphans.len() + search.unlocated.len()).to_string(),
            ),
            (ksh_proto::WEAK_LOCATED_KEY, orphans.len().to_string()),
        ] {
            files::push(&mut self.build_info, &BuildInfoLine { key, value: &value });
        }
        self.notes.push(format!(
            "orphaned weak bodies: {} ({n_fixture} fixture, {} real); {} overridden weak functions not located",
            orphans.len(),
            orphans.len() - n_fixture,
            search.unlocated.len()
        ));
        Ok(())
    }

    /// A note on the text gaps by class.
    fn note_gaps(&mut self, gaps: &[symbols::Gap]) {
        let mut by_class: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for g in gaps {
            // The variant name (the colleague's classes may grow).
            let c = format!("{:?}", g.class);
            let c = c.split([' ', '{', '(']).next().unwrap_or("").to_string();
            let x = by_class.entry(c).or_default();
            x.0 += 1;
            x.1 += g.len();
        }
        self.notes.push(format!(
            "text gaps: {} ({})",
            gaps.len(),
            by_class
                .iter()
                .map(|(c, (n, b))| format!("{c} {n} / {b} bytes"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    /// weak-kept.txt: weak functions still named in vmlinux.
    fn weak_kept_file(&mut self, inp: &Inputs) {
        let mut n_kept = 0;
        for t in inp.table.iter().filter(|t| inp.eligible(t)) {
            if t.binding == Binding::Weak && t.kind == SymKind::Func {
                if let Some(size) = t.size {
                    n_kept += 1;
                    files::push(
                        &mut self.weak_kept,
                        &WeakKeptLine {
                            addr: t.addr,
                            size,
                            ty: t.ty as char,
                            name: &t.name,
                        },
                    );
                }
            }
        }
        self.notes.push(format!("weak functions kept: {n_kept}"));
    }

    /// format-ps.txt: text functions alone at their address, with nothing
    /// nested: every FORMAT_SAMPLE_EVERY-th, plus every function that
    /// ends before a gap that is not mere padding.
    fn format_ps_file(&mut self, inp: &Inputs, gaps: &[symbols::Gap]) {
        let before_gap: std::collections::HashSet<&str> = gaps
            .iter()
            .filter(|g| g.class != GapClass::Padding)
            .map(|g| g.after_symbol.as_str())
            .collect();
        let mut k = 0usize;
        let mut n_fmt = 0usize;
        for (addr, g) in &inp.groups() {
            let [t] = g.as_slice() else { continue };
            let Some(size) = t.size else { continue };
            if t.kind != SymKind::Func || inp.nested(t, size) {
                continue;
            }
            k += 1;
            if !k.is_multiple_of(FORMAT_SAMPLE_EVERY) && !before_gap.contains(t.name.as_str()) {
                continue;
            }
            n_fmt += 1;
            for offset in [0, size / 2] {
                let expected = format!("{}+{offset:#x}/{size:#x}", t.name);
                files::push(
                    &mut self.format_ps,
                    &FormatPsLine {
                        addr: *addr,
                        offset,
                        expected: &expected,
                    },
                );
            }
        }
        self.notes
            .push(format!("format-pS samples: {n_fmt} functions"));
    }

    /// kprobes.txt, first part: ends of functions followed by a
    /// non-padding gap: the first 32, and always the fixture's (the gap
    /// after its anchor). The blacklisted targets follow
    /// ([`Self::consumer_files`]).
    fn kprobes_file(&mut self, inp: &Inputs, gaps: &[symbols::Gap]) {
        let by_name: HashMap<&str, &KallsymsEntry> =
            inp.table.iter().map(|t| (t.name.as_str(), t)).collect();
        let non_padding: Vec<_> = gaps
            .iter()
            .filter(|g| g.class != GapClass::Padding)
            .collect();
        let fixture_gap = non_padding
            .iter()
            .skip(32)
            .filter(|g| g.after_symbol.starts_with(FIXTURE_PREFIX));
        for g in non_padding.iter().take(32).chain(fixture_gap) {
            if let Some(t) = by_name.get(g.after_symbol.as_str()) {
                if t.size.is_some_and(|s| t.addr + s == g.start) {
                    files::push(
                        &mut self.kprobes,
                        &KprobeLine {
                            addr: g.start,
                            kind: KprobeKind::PastEnd,
                            name: &t.name,
                        },
                    );
                }
            }
        }
    }

    /// The kernel's users of lookups: blacklist.txt and the blacklisted
    /// kprobe targets, unsized.txt, nested.txt (`consumers`).
    fn consumer_files(&mut self, inp: &Inputs, arch: &ArchProfile) -> Result<()> {
        let in_range: Vec<&KallsymsEntry> = inp.table.iter().filter(|t| inp.eligible(t)).collect();
        let lookup = consumers::host_lookup(in_range.iter().copied());
        let img = symbols::ElfImage::open(inp.vmlinux)?;
        let bl = consumers::blacklist(&img, &lookup, arch.name);
        if !bl.unresolved.is_empty() {
            anyhow::bail!(
                "{}: {} NOKPROBE_SYMBOL entries cannot be resolved (the kprobes expectations would miss them): {}",
                inp.vmlinux.display(),
                bl.unresolved.len(),
                bl.unresolved.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            );
        }
        self.blacklist = bl.entries;
        self.kprobes.push_str(&bl.targets);
        self.notes.push(bl.note);
        if config_value(&inp.config, "CONFIG_DYNAMIC_FTRACE").as_deref() == Some("y") {
            self.ftrace = consumers::ftrace_sites(&img, &lookup).map_err(|e| {
                anyhow::anyhow!("{}: ftrace call sites: {e}", inp.vmlinux.display())
            })?;
            self.notes.push(format!(
                "ftrace call sites kept after boot: {}",
                self.ftrace.lines().count()
            ));
        }
        self.unsized_syms = consumers::unsized_symbols(&lookup);
        self.notes.push(format!(
            "unsized symbols alone at their address: {}",
            self.unsized_syms.lines().count() / 2
        ));
        let (nested_text, pairs) = consumers::nested(&in_range);
        self.nested = nested_text;
        self.notes.push(format!(
            "nested sized symbols: {pairs} ({} addresses to check)",
            self.nested.lines().count()
        ));
        Ok(())
    }

    /// module-syms.txt: the probe module's text functions (not init/exit).
    fn module_syms_file(&mut self, ko: &Path) -> Result<()> {
        self.has_module = true;
        let syms = symbols::read_elf_symbols(ko)?;
        let mut count: HashMap<String, usize> = HashMap::new();
        for s in &syms {
            *count.entry(s.name_str().into_owned()).or_default() += 1;
        }
        let mut n_mod = 0;
        for s in &syms {
            let name = s.name_str();
            let sec = s.section_name.as_deref().unwrap_or("");
            if s.kind == SymKind::Func
                && s.size > 0
                && (sec.starts_with(".text") || sec == ".kprobes.text")
                && !name.starts_with("__pfx_")
                && !name.starts_with("__cfi_")
                && count.get(name.as_ref()) == Some(&1)
            {
                n_mod += 1;
                files::push(
                    &mut self.module_syms,
                    &ModuleSymLine {
                        name: &name,
                        size: s.size,
                    },
                );
            }
        }
        self.notes.push(format!("probe module functions: {n_mod}"));
        Ok(())
    }

    /// Lists every kernel the harness builds is guaranteed to fill (the
    /// fixture patch when `has_fixture`, the probe module): an empty one
    /// means the ground truth is broken, and a probe given it would check
    /// nothing.
    fn check_guaranteed(&self, has_fixture: bool) -> Result<()> {
        let has_fixture_entry = |text: &str| {
            text.lines()
                .any(|l| l.split(' ').any(|f| f.starts_with(FIXTURE_PREFIX)))
        };
        let mut missing = Vec::new();
        // Every kernel has symbols and sizes; the probe module has functions.
        for (path, text, guaranteed) in [
            (ksh_proto::EXPECT_KALLSYMS, &self.kallsyms, true),
            (ksh_proto::EXPECT_SIZES, &self.sizes, true),
            (
                ksh_proto::EXPECT_MODULE_SYMS,
                &self.module_syms,
                self.has_module,
            ),
        ] {
            if guaranteed && text.trim().is_empty() {
                missing.push(format!("{path} is empty"));
            }
        }
        // The fixture adds entries to all of these (and to the two above).
        if has_fixture {
            for (path, text) in [
                (ksh_proto::EXPECT_KALLSYMS, &self.kallsyms),
                (ksh_proto::EXPECT_SIZES, &self.sizes),
                (ksh_proto::EXPECT_ORPHANS, &self.orphans),
                (ksh_proto::EXPECT_WEAK_KEPT, &self.weak_kept),
                (ksh_proto::EXPECT_FORMAT_PS, &self.format_ps),
                (ksh_proto::EXPECT_KPROBES, &self.kprobes),
            ] {
                if !has_fixture_entry(text) {
                    missing.push(format!("{path} has no {FIXTURE_PREFIX}* entry"));
                }
            }
        }
        anyhow::ensure!(
            missing.is_empty(),
            "expectations the kernel and its fixture guarantee came out empty (a fault of the ground truth): {}",
            missing.join("; ")
        );
        Ok(())
    }

    /// The expectation files for the initramfs.
    pub fn files(&self) -> Vec<GuestFile> {
        let f = |path: &str, text: &str| GuestFile {
            path: path.into(),
            mode: 0o644,
            data: text.as_bytes().to_vec(),
        };
        vec![
            f(ksh_proto::EXPECT_KALLSYMS, &self.kallsyms),
            f(ksh_proto::EXPECT_BUILD_INFO, &self.build_info),
            f(ksh_proto::EXPECT_SIZES, &self.sizes),
            GuestFile {
                path: ksh_proto::EXPECT_SIZES_CHECK.into(),
                mode: 0o644,
                data: self.sizes_check.clone(),
            },
            f(ksh_proto::EXPECT_SIZES_COUNTS, &self.sizes_counts),
            f(ksh_proto::EXPECT_ORPHANS, &self.orphans),
            f(ksh_proto::EXPECT_WEAK_KEPT, &self.weak_kept),
            f(ksh_proto::EXPECT_FORMAT_PS, &self.format_ps),
            f(ksh_proto::EXPECT_MODULE_SYMS, &self.module_syms),
            f(ksh_proto::EXPECT_KPROBES, &self.kprobes),
            f(ksh_proto::EXPECT_BLACKLIST, &self.blacklist),
            f(ksh_proto::EXPECT_NESTED, &self.nested),
            f(ksh_proto::EXPECT_UNSIZED, &self.unsized_syms),
            f(ksh_proto::EXPECT_FTRACE, &self.ftrace),
        ]
    }

    /// A few lines about what was computed.
    pub fn summary(&self) -> String {
        let mut s = self.notes.join("\n");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_misses_on_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            GuestFile {
                path: "/ksh/expect/a b.txt".into(),
                mode: 0o644,
                data: b"one\ntwo\n".to_vec(),
            },
            GuestFile {
                path: "/ksh/m.ko".into(),
                mode: 0o600,
                data: vec![0, b'\n', 255],
            },
        ];
        store_cached(dir.path(), "k1", &files).unwrap();
        let back = load_cached(dir.path(), "k1").unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(
            (back[0].path.as_str(), back[0].mode, &back[0].data[..]),
            ("/ksh/expect/a b.txt", 0o644, &b"one\ntwo\n"[..])
        );
        assert_eq!(back[1].data, [0, b'\n', 255]);
        assert!(load_cached(dir.path(), "k2").is_none());
        std::fs::write(dir.path().join("files"), "644 99 /x\nshort").unwrap();
        assert!(load_cached(dir.path(), "k1").is_none());
    }

    #[test]
    fn guaranteed_lists_must_not_come_out_empty() {
        let f = |n: &str| format!("ffffffff81000000 T {FIXTURE_PREFIX}{n}\n");
        let mut e = Expectations {
            kallsyms: f("anchor"),
            sizes: f("anchor"),
            orphans: f("weak_overridden"),
            weak_kept: f("weak_kept"),
            format_ps: f("anchor"),
            kprobes: f("anchor"),
            module_syms: "ksh_probe_target 10\n".into(),
            has_module: true,
            ..Default::default()
        };
        e.check_guaranteed(true).unwrap();
        e.weak_kept.clear();
        let err = e.check_guaranteed(true).unwrap_err().to_string();
        assert!(err.contains("weak-kept.txt has no"), "{err}");
        // A tree without the fixture only owes the kernel's own lists.
        e.check_guaranteed(false).unwrap();
        e.module_syms.clear();
        assert!(e.check_guaranteed(false).is_err());
    }

    /// Against a real build dir (`KSH_EXPECT_BUILD_DIR`, else
    /// `/tmp/kb/x86_64`; none is a failure), of the arch `KSH_EXPECT_ARCH`
    /// (else x86_64); prints the summary.
    #[test]
    #[ignore = "needs a built kernel: set KSH_EXPECT_BUILD_DIR; .ci/run runs it"]
    fn computes_on_a_real_build() {
        let dir = std::env::var("KSH_EXPECT_BUILD_DIR").unwrap_or_else(|_| "/tmp/kb/x86_64".into());
        let dir = Path::new(&dir);
        assert!(
            dir.join("vmlinux").is_file(),
            "{}: no vmlinux; set KSH_EXPECT_BUILD_DIR to a kernel build dir",
            dir.display()
        );
        let ko = std::env::var("KSH_EXPECT_KO").ok();
        let arch = std::env::var("KSH_EXPECT_ARCH").unwrap_or_else(|_| "x86_64".into());
        let arch = crate::cell::arch::by_name(&arch).unwrap();
        let t = std::time::Instant::now();
        let e = Expectations::compute(
            arch,
            dir,
            &dir.join("vmlinux"),
            ko.as_deref().map(Path::new),
        )
        .unwrap();
        println!("{}took {:?}", e.summary(), t.elapsed());
        assert!(!e.sizes.is_empty());
        for l in e.format_ps.lines().take(4) {
            println!("format: {l}");
        }
        for l in e.orphans.lines() {
            println!("orphan: {l}");
        }
        print!("{}", e.build_info);
        print!("{}", e.module_syms);
        print!("{}", e.kprobes);
    }
}
