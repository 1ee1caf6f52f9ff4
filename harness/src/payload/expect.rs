//! Expectations: what the guest probes compare the kernel's answers with,
//! computed on the host from the build (vmlinux, objects, .config) and
//! shipped in the initramfs under `ksh_proto::EXPECT_DIR`, together with the
//! probe module. The guest side stays simple: it reads these files and
//! compares. The files are registered in `ksh_proto::files::EXPECT_FILES`;
//! a writer here pushes records of `ksh_proto::files`, each of which goes
//! to its own file (the guest reads it with the same type); addresses are
//! link-time (the guest adds the KASLR offset it reads from
//! `/proc/kallsyms`). vmlinux is read and parsed once ([`Inputs`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};

use crate::cell::arch::ArchProfile;
use crate::kernel::kbuild::Built;
use crate::payload::cpio::{self, CpioBuilder};
use crate::payload::initramfs::GuestFile;
use crate::symbols::{self, Binding, ElfImage, GapClass, KallsymsEntry, OrphanSearch, SymKind};
use ksh_proto::files::{
    self, BuildInfo, FileId, Filled, FormatPsLine, KallsymsLine, KprobeKind, KprobeLine, Line,
    ModuleSymLine, OrphanLine, SizesLine, WeakKeptLine, EXPECT_FILES,
};

mod consumers;

pub use ksh_proto::FIXTURE_PREFIX;

/// One in how many eligible text functions the `format-pS` probe samples
/// (besides every function that ends before a gap).
pub const FORMAT_SAMPLE_EVERY: usize = 97;

/// What the guest gets besides `/init`, and the build's facts.
#[derive(Debug, Clone)]
pub struct GuestPayload {
    /// The expectation files and the probe module, by path.
    pub files: Vec<GuestFile>,
    /// The facts `build-info.txt` carries to the guest, as a value.
    pub build_info: BuildInfo,
}

/// Every file the guest needs besides `/init`, for the build `built`:
/// expectation files plus the probe module; and the build's facts.
pub fn guest_files(arch: &ArchProfile, built: &Built) -> Result<GuestPayload> {
    let ko = crate::payload::probemod::build(arch, built)?;
    let cache = built.dir.join("ksh-expect-cache");
    let key = cache_key(built, &ko);
    if let Some(payload) = key.as_deref().and_then(|k| load_cached(&cache, k)) {
        return Ok(payload);
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
    // In path order, as the cache gives them back.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(k) = &key {
        // A cache that cannot be written only costs the next run time.
        let _ = store_cached(&cache, k, &files);
    }
    Ok(GuestPayload {
        files,
        build_info: exp.build_info,
    })
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

/// The cached files (`files.cpio`, the project's own archive format,
/// paths as in the guest) if `key` names the inputs they were made from;
/// the build's facts are read back from the cached `build-info.txt`.
fn load_cached(dir: &Path, key: &str) -> Option<GuestPayload> {
    if std::fs::read_to_string(dir.join("key")).ok()?.trim() != key {
        return None;
    }
    let archive = std::fs::read(dir.join(CACHE_ARCHIVE)).ok()?;
    let files: Vec<GuestFile> = cpio::read(&archive)
        .ok()?
        .into_iter()
        .filter_map(|e| {
            Some(GuestFile {
                mode: e.file_mode()?,
                path: format!("/{}", e.name),
                data: e.data,
            })
        })
        .collect();
    let info = files.iter().find(|f| f.path == FileId::BuildInfo.path())?;
    let build_info = BuildInfo::decode(std::str::from_utf8(&info.data).ok()?).ok()?;
    Some(GuestPayload { files, build_info })
}

/// The archive of cached files in the cache dir.
const CACHE_ARCHIVE: &str = "files.cpio";

fn store_cached(dir: &Path, key: &str, files: &[GuestFile]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut archive = CpioBuilder::new();
    for f in files {
        archive.add_file(&f.path, f.mode, f.data.clone())?;
    }
    // The key goes last: a run interrupted in between leaves a stale key,
    // which simply misses.
    let _ = std::fs::remove_file(dir.join("key"));
    // The format before: one `files` blob of `MODE LEN PATH` headers.
    let _ = std::fs::remove_file(dir.join("files"));
    std::fs::write(dir.join(CACHE_ARCHIVE), archive.finish()?)?;
    std::fs::write(dir.join("key"), key)?;
    Ok(())
}

/// Everything the probes need: the contents of every registered file,
/// the build's facts as a value, and notes for the summary.
#[derive(Debug, Default)]
pub struct Expectations {
    /// Each file's bytes, indexed by [`FileId`] (`build-info.txt` is
    /// [`Self::build_info`] encoded once every writer is done).
    contents: [Vec<u8>; FileId::COUNT],
    /// The build's facts (release, options, counts, the KASLR anchor).
    pub build_info: BuildInfo,
    /// Whether a probe module was given (then `module-syms.txt` must not
    /// be empty).
    pub has_module: bool,
    /// Human-readable facts (counts, gaps by class) for the report.
    pub notes: Vec<String>,
    /// One record's line, reused.
    line: String,
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

/// What every expectation file is derived from: one build's vmlinux
/// (read and parsed once, here), its table, orphaned weak bodies, text
/// gaps and configuration.
struct Inputs<'a> {
    build_dir: &'a Path,
    vmlinux: &'a Path,
    config: String,
    img: ElfImage,
    table: Vec<KallsymsEntry>,
    range: KsymRange,
    /// Sorted unique addresses of every table entry, for nesting tests.
    starts: Vec<u64>,
    orphans: OrphanSearch,
    gaps: Vec<symbols::Gap>,
}

impl<'a> Inputs<'a> {
    fn read(build_dir: &'a Path, vmlinux: &'a Path) -> Result<Self> {
        let config_path = build_dir.join(".config");
        let config = std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let opts = symbols::kallsyms_options_from_config(&config_path)?;
        let img = ElfImage::open(vmlinux)?;
        let table = symbols::expected_kallsyms_image(&img, &opts);
        let range = KsymRange::new(&img.symbols, opts.all_symbols)?;
        let orphans = symbols::orphan_search_in(build_dir, &img, &table).with_context(|| {
            format!("searching orphaned weak bodies in {}", build_dir.display())
        })?;
        // Gaps are classified with the objects when vmlinux sits in its
        // build dir (it always does in a harness build).
        let gaps_dir = symbols::gaps::build_dir_of(vmlinux);
        let classify_with = if gaps_dir.is_some() {
            &orphans.orphans[..]
        } else {
            &[]
        };
        let gaps = symbols::gaps::text_gaps_in(&img, gaps_dir, classify_with)?;
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
            img,
            table,
            range,
            starts,
            orphans,
            gaps,
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
        e.orphans_file(&inp);
        e.note_gaps(&inp.gaps);
        e.weak_kept_file(&inp);
        e.format_ps_file(&inp);
        e.kprobes_file(&inp);
        e.consumer_files(&inp, arch)?;
        if let Some(ko) = ko {
            e.module_syms_file(ko)?;
        }
        e.contents[FileId::BuildInfo as usize] = e.build_info.encode().into_bytes();
        // The fixture's object is in the build dir when its patch is in
        // the tree (always with Debian's source; a --kernel-tree may lack
        // it, and then the probes' own "0 checked" failures say so).
        let has_fixture = build_dir.join("kernel/kallsyms_weak_fixture.o").is_file();
        e.check_guaranteed(has_fixture)?;
        Ok(e)
    }

    /// Appends `record` to its file.
    fn push<'r, T: Line<'r>>(&mut self, record: &T) {
        self.line.clear();
        files::push(&mut self.line, record);
        self.contents[T::FILE as usize].extend_from_slice(self.line.as_bytes());
    }

    /// Appends lines made elsewhere (with the file's record type) to `file`.
    fn push_text(&mut self, file: FileId, text: &str) {
        self.contents[file as usize].extend_from_slice(text.as_bytes());
    }

    /// The text of `file` (empty for a binary one).
    pub fn text(&self, file: FileId) -> &str {
        std::str::from_utf8(&self.contents[file as usize]).unwrap_or_default()
    }

    /// kallsyms.txt: the whole expected table.
    fn kallsyms_file(&mut self, inp: &Inputs) {
        for t in &inp.table {
            self.push(&KallsymsLine {
                addr: t.addr,
                ty: t.ty as char,
                name: &t.name,
            });
        }
    }

    /// build-info.txt: release, symbol count, options, the anchor's address.
    fn build_info_file(&mut self, inp: &Inputs) -> Result<()> {
        let release = std::fs::read_to_string(inp.build_dir.join("include/config/kernel.release"))
            .unwrap_or_default();
        let yes = |k: &str| config_value(&inp.config, k).as_deref() == Some("y");
        let facts = &mut self.build_info;
        facts.push("kernel_release", release.trim());
        facts.push(ksh_proto::SYMBOLS_KEY, inp.table.len());
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
            facts.push(k, if yes(opt) { "1" } else { "0" });
        }
        // The link-time address of the anchor the probe module reports at
        // run time: an offset independent of kallsyms (ksh_proto::ANCHOR_SYMBOL).
        let anchor = symbols::symbol_address_in(&inp.img.symbols, ksh_proto::ANCHOR_SYMBOL)
            .with_context(|| {
                format!("{} in {}", ksh_proto::ANCHOR_SYMBOL, inp.vmlinux.display())
            })?;
        facts.push(ksh_proto::ANCHOR_LINK_KEY, format!("{anchor:x}"));
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
                self.push(&SizesLine {
                    addr,
                    sized,
                    name: &t.name,
                });
            }
        }
        let (check, counts) = {
            let size_groups =
                ksh_proto::sizes::parse(self.text(FileId::Sizes)).map_err(anyhow::Error::msg)?;
            let plan = ksh_proto::sizes::plan(&size_groups);
            let mut check = Vec::new();
            for r in &plan.records {
                r.encode(&mut check);
            }
            (check, ksh_proto::sizes::counts_line(&plan))
        };
        self.contents[FileId::SizesCheck as usize] = check;
        self.push_text(FileId::SizesCounts, &counts);
        self.build_info.push(ksh_proto::SIZED_SYMBOLS_KEY, n_sized);
        self.build_info
            .push(ksh_proto::SIZED_ADDRESSES_KEY, n_addrs);
        self.notes.push(format!(
            "sizes: {n_addrs} addresses, {n_sized} sized symbols ({n_nested} with another symbol inside)"
        ));
        Ok(())
    }

    /// orphans.txt: the orphaned weak bodies of the objects.
    fn orphans_file(&mut self, inp: &Inputs) {
        let build_dir = inp.build_dir;
        let search = &inp.orphans;
        let orphans = &search.orphans;
        for o in orphans {
            let obj = o.object.strip_prefix(build_dir).unwrap_or(&o.object);
            let object = obj.display().to_string();
            self.push(&OrphanLine {
                start: o.start,
                end: o.end,
                name: &o.name,
                preceding: (!o.preceding_symbol.is_empty()).then_some(o.preceding_symbol.as_str()),
                object: &object,
            });
        }
        let n_fixture = orphans
            .iter()
            .filter(|o| o.name.starts_with(FIXTURE_PREFIX))
            .count();
        self.build_info.push(
            ksh_proto::WEAK_OVERRIDDEN_KEY,
            orphans.len() + search.unlocated.len(),
        );
        self.build_info
            .push(ksh_proto::WEAK_LOCATED_KEY, orphans.len());
        self.notes.push(format!(
            "orphaned weak bodies: {} ({n_fixture} fixture, {} real); {} overridden weak functions not located",
            orphans.len(),
            orphans.len() - n_fixture,
            search.unlocated.len()
        ));
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
                    self.push(&WeakKeptLine {
                        addr: t.addr,
                        size,
                        ty: t.ty as char,
                        name: &t.name,
                    });
                }
            }
        }
        self.notes.push(format!("weak functions kept: {n_kept}"));
    }

    /// format-ps.txt: text functions alone at their address, with nothing
    /// nested: every FORMAT_SAMPLE_EVERY-th, plus every function that
    /// ends before a gap that is not mere padding.
    fn format_ps_file(&mut self, inp: &Inputs) {
        let before_gap: std::collections::HashSet<&str> = inp
            .gaps
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
                self.push(&FormatPsLine {
                    addr: *addr,
                    offset,
                    expected: &expected,
                });
            }
        }
        self.notes
            .push(format!("format-pS samples: {n_fmt} functions"));
    }

    /// kprobes.txt, first part: ends of functions followed by a
    /// non-padding gap: the first 32, and always the fixture's (the gap
    /// after its anchor). The blacklisted targets follow
    /// ([`Self::consumer_files`]). Only ends where the size-aware rule
    /// finds no symbol: an unsized label inside the function before
    /// (x86_64's `ftrace_caller_end` in `ftrace_caller`) reaches up to the
    /// next start, so its gap is text the kernel rightly accepts.
    fn kprobes_file(&mut self, inp: &Inputs) {
        let by_name: HashMap<&str, &KallsymsEntry> =
            inp.table.iter().map(|t| (t.name.as_str(), t)).collect();
        let lookup = consumers::host_lookup(inp.table.iter().filter(|t| inp.eligible(t)));
        let non_padding: Vec<_> = inp
            .gaps
            .iter()
            .filter(|g| g.class != GapClass::Padding)
            .collect();
        let fixture_gap = non_padding
            .iter()
            .skip(32)
            .filter(|g| g.after_symbol.starts_with(FIXTURE_PREFIX));
        for g in non_padding.iter().take(32).chain(fixture_gap) {
            if let Some(t) = by_name.get(g.after_symbol.as_str()) {
                if t.size.is_some_and(|s| t.addr + s == g.start) && lookup.find(g.start).is_none() {
                    self.push(&KprobeLine {
                        addr: g.start,
                        kind: KprobeKind::PastEnd,
                        name: &t.name,
                    });
                }
            }
        }
    }

    /// The kernel's users of lookups: blacklist.txt and the blacklisted
    /// kprobe targets, unsized.txt, nested.txt (`consumers`).
    fn consumer_files(&mut self, inp: &Inputs, arch: &ArchProfile) -> Result<()> {
        let in_range: Vec<&KallsymsEntry> = inp.table.iter().filter(|t| inp.eligible(t)).collect();
        let lookup = consumers::host_lookup(in_range.iter().copied());
        let img = &inp.img;
        let bl = consumers::blacklist(img, &lookup, arch.name);
        if !bl.unresolved.is_empty() {
            anyhow::bail!(
                "{}: {} NOKPROBE_SYMBOL entries cannot be resolved (the kprobes expectations would miss them): {}",
                inp.vmlinux.display(),
                bl.unresolved.len(),
                bl.unresolved.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            );
        }
        self.push_text(FileId::Blacklist, &bl.entries);
        self.push_text(FileId::Kprobes, &bl.targets);
        self.notes.push(bl.note);
        if config_value(&inp.config, "CONFIG_DYNAMIC_FTRACE").as_deref() == Some("y") {
            let ftrace = consumers::ftrace_sites(img, &lookup).map_err(|e| {
                anyhow::anyhow!("{}: ftrace call sites: {e}", inp.vmlinux.display())
            })?;
            self.push_text(FileId::Ftrace, &ftrace);
            self.notes.push(format!(
                "ftrace call sites kept after boot: {}",
                ftrace.lines().count()
            ));
        }
        let unsized_text = consumers::unsized_symbols(&lookup);
        self.push_text(FileId::Unsized, &unsized_text);
        self.notes.push(format!(
            "unsized symbols alone at their address: {}",
            unsized_text.lines().count() / 2
        ));
        let (nested_text, pairs) = consumers::nested(&in_range);
        self.push_text(FileId::Nested, &nested_text);
        self.notes.push(format!(
            "nested sized symbols: {pairs} ({} addresses to check)",
            nested_text.lines().count()
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
                self.push(&ModuleSymLine {
                    name: &name,
                    size: s.size,
                });
            }
        }
        self.notes.push(format!("probe module functions: {n_mod}"));
        Ok(())
    }

    /// Lists every kernel the harness builds is guaranteed to fill (the
    /// registry's `filled`, and its `fixture_entries` when `has_fixture`):
    /// an empty one means the ground truth is broken, and a probe given it
    /// would check nothing.
    fn check_guaranteed(&self, has_fixture: bool) -> Result<()> {
        let has_fixture_entry = |text: &str| {
            text.lines()
                .any(|l| l.split(' ').any(|f| f.starts_with(FIXTURE_PREFIX)))
        };
        let mut missing = Vec::new();
        for f in EXPECT_FILES {
            let guaranteed = match f.filled {
                Filled::Always => true,
                Filled::WithModule => self.has_module,
                Filled::Maybe => false,
            };
            if guaranteed && self.text(f.id).trim().is_empty() {
                missing.push(format!("{} is empty", f.path));
            }
        }
        if has_fixture {
            for f in EXPECT_FILES.iter().filter(|f| f.fixture_entries) {
                if !has_fixture_entry(self.text(f.id)) {
                    missing.push(format!("{} has no {FIXTURE_PREFIX}* entry", f.path));
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

    /// The expectation files for the initramfs, in the registry's order.
    pub fn files(&self) -> Vec<GuestFile> {
        EXPECT_FILES
            .iter()
            .map(|f| GuestFile {
                path: f.path.into(),
                mode: 0o644,
                data: self.contents[f.id as usize].clone(),
            })
            .collect()
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
        // In path order, as `guest_files` gives them.
        let files = vec![
            GuestFile {
                path: "/ksh/expect/a b.txt".into(),
                mode: 0o644,
                data: b"one\ntwo\n".to_vec(),
            },
            GuestFile {
                path: FileId::BuildInfo.path().into(),
                mode: 0o644,
                data: b"kallsyms_symbols=3\n".to_vec(),
            },
            GuestFile {
                path: "/ksh/m.ko".into(),
                mode: 0o600,
                data: vec![0, b'\n', 255],
            },
        ];
        store_cached(dir.path(), "k1", &files).unwrap();
        let back = load_cached(dir.path(), "k1").unwrap();
        assert_eq!(back.build_info.symbols(), 3);
        let back: Vec<_> = back
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.mode, &f.data[..]))
            .collect();
        let want: Vec<_> = files
            .iter()
            .map(|f| (f.path.as_str(), f.mode, &f.data[..]))
            .collect();
        assert_eq!(back, want);
        assert!(load_cached(dir.path(), "k2").is_none());
        std::fs::write(dir.path().join(CACHE_ARCHIVE), "070701short").unwrap();
        assert!(load_cached(dir.path(), "k1").is_none());
    }

    #[test]
    fn guaranteed_lists_must_not_come_out_empty() {
        let f = |n: &str| format!("ffffffff81000000 T {FIXTURE_PREFIX}{n}\n");
        let mut e = Expectations {
            has_module: true,
            ..Default::default()
        };
        for (file, text) in [
            (FileId::Kallsyms, f("anchor")),
            (FileId::BuildInfo, "kallsyms_symbols=1\n".into()),
            (FileId::Sizes, f("anchor")),
            (FileId::Orphans, f("weak_overridden")),
            (FileId::WeakKept, f("weak_kept")),
            (FileId::FormatPs, f("anchor")),
            (FileId::Kprobes, f("anchor")),
            (FileId::ModuleSyms, "ksh_probe_target 10\n".into()),
        ] {
            e.push_text(file, &text);
        }
        e.check_guaranteed(true).unwrap();
        e.contents[FileId::WeakKept as usize].clear();
        let err = e.check_guaranteed(true).unwrap_err().to_string();
        assert!(err.contains("weak-kept.txt has no"), "{err}");
        // A tree without the fixture only owes the kernel's own lists.
        e.check_guaranteed(false).unwrap();
        e.contents[FileId::ModuleSyms as usize].clear();
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
        assert!(!e.text(FileId::Sizes).is_empty());
        for l in e.text(FileId::FormatPs).lines().take(4) {
            println!("format: {l}");
        }
        for l in e.text(FileId::Orphans).lines() {
            println!("orphan: {l}");
        }
        print!("{}", e.build_info.encode());
        print!("{}", e.text(FileId::ModuleSyms));
        print!("{}", e.text(FileId::Kprobes));
        // Every file, for comparing two versions of the harness byte for
        // byte (`sha256sum DIR/*`).
        if let Ok(out) = std::env::var("KSH_EXPECT_DUMP_DIR") {
            std::fs::create_dir_all(&out).unwrap();
            for f in e.files() {
                let name = f.path.rsplit('/').next().unwrap();
                std::fs::write(Path::new(&out).join(name), &f.data).unwrap();
            }
        }
    }
}
