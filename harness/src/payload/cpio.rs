//! A deterministic writer for "newc" cpio archives (the format the kernel
//! unpacks as an initramfs).
//!
//! Why our own writer instead of `cpio -o` or `gen_init_cpio`: the harness
//! rebuilds the initramfs for every cell and only rewrites it (and so only
//! invalidates downstream caches) when its bytes change. That needs the same
//! inputs to give the same bytes on every host, which external tools don't
//! promise (they record mtimes, inode numbers and owners from the file
//! system). Here every variable field is fixed: mtime 0, uid/gid 0, inode
//! numbers assigned in path order, entries sorted by path, and parent
//! directories created implicitly before their children.
//!
//! Format reference: `Documentation/driver-api/early-userspace/buffer-format.rst`
//! in the kernel tree. Each entry is a 110-byte ASCII header (magic `070701`
//! and thirteen 8-digit hex fields), the NUL-terminated name padded so that
//! header + name is a multiple of 4, then the data padded to 4. The archive
//! ends with a `TRAILER!!!` entry and is zero-padded to a 512-byte block like
//! GNU cpio and `gen_init_cpio` do (the kernel skips the zero padding).

use std::collections::BTreeMap;
use std::fmt;

/// File-type bits of `st_mode` (from `<sys/stat.h>`), spelled out so the
/// archive does not depend on the host's libc.
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Mode of directories created implicitly as parents of added entries.
pub const IMPLICIT_DIR_MODE: u32 = 0o755;

const MAGIC: &str = "070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";
/// The archive is padded to a multiple of this, as GNU cpio does.
const BLOCK: usize = 512;

/// Why an entry could not be added (or the archive not written).
///
/// Every variant names the offending path so a caller's error chain says
/// which of its inputs is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpioError {
    /// The path is empty or names the root (`/`), which the kernel already has.
    EmptyPath { path: String },
    /// A `..` component: the archive must not escape the root when unpacked.
    DotDot { path: String },
    /// A NUL byte: names are NUL-terminated in the format.
    Nul { path: String },
    /// Mode bits beyond the permission bits, or file-type bits that
    /// contradict the kind of entry being added.
    BadMode { path: String, mode: u32 },
    /// The same path was added twice with different kind, mode or content.
    Conflict { path: String },
    /// An ancestor of the path was added as something other than a directory.
    ParentNotDir { path: String, parent: String },
    /// A symlink with an empty target, or a target containing NUL.
    BadSymlinkTarget { path: String },
    /// A file too big for the format's 32-bit size field.
    TooLarge { path: String, size: usize },
    /// An archive being read is not what [`CpioBuilder::finish`] writes.
    Malformed { at: usize, why: String },
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::EmptyPath { path } => {
                write!(
                    f,
                    "cpio: empty path {path:?} (the root directory cannot be added)"
                )
            }
            CpioError::DotDot { path } => {
                write!(f, "cpio: path {path:?} contains a `..` component")
            }
            CpioError::Nul { path } => write!(f, "cpio: path {path:?} contains a NUL byte"),
            CpioError::BadMode { path, mode } => {
                write!(f, "cpio: invalid mode {mode:#o} for {path:?} (expected permission bits only, at most 0o7777)")
            }
            CpioError::Conflict { path } => {
                write!(
                    f,
                    "cpio: {path:?} added twice with different type, mode or content"
                )
            }
            CpioError::ParentNotDir { path, parent } => {
                write!(
                    f,
                    "cpio: cannot add {path:?}: its parent {parent:?} is not a directory"
                )
            }
            CpioError::BadSymlinkTarget { path } => {
                write!(
                    f,
                    "cpio: symlink {path:?} has an empty target or one containing NUL"
                )
            }
            CpioError::TooLarge { path, size } => {
                write!(
                    f,
                    "cpio: {path:?} is {size} bytes, more than the newc format's 4 GiB limit"
                )
            }
            CpioError::Malformed { at, why } => {
                write!(f, "cpio: malformed archive at byte {at}: {why}")
            }
        }
    }
}

impl std::error::Error for CpioError {}

/// What an entry is; the data that goes into its header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

impl Kind {
    fn type_bits(&self) -> u32 {
        match self {
            Kind::Dir => S_IFDIR,
            Kind::File(_) => S_IFREG,
            Kind::Symlink(_) => S_IFLNK,
            Kind::CharDev { .. } => S_IFCHR,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    /// Permission bits only (`& 0o7777`).
    perm: u32,
    /// Created only as the parent of another entry; an explicit `add_dir`
    /// may still set its mode.
    implicit: bool,
}

/// Collects entries and writes them as one deterministic newc archive.
///
/// Paths are given as in the guest (`/dev/console` or `dev/console`) and
/// stored relative (`dev/console`), which is what the kernel and `cpio -i`
/// expect. Adding the same entry twice is allowed (so callers can add a
/// directory "just in case"); adding the same path with different content
/// is an error.
#[derive(Debug, Clone, Default)]
pub struct CpioBuilder {
    /// Keyed by path components, so entries come out in component-wise
    /// order: every directory right before its contents.
    entries: BTreeMap<Vec<String>, Entry>,
}

impl CpioBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory with permission bits `mode`. Overrides the mode of
    /// a directory that was created implicitly as a parent.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        self.add(path, mode, Kind::Dir)
    }

    /// Adds a regular file with permission bits `mode` and contents `data`.
    pub fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        data: impl Into<Vec<u8>>,
    ) -> Result<(), CpioError> {
        let data = data.into();
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError::TooLarge {
                path: path.to_string(),
                size: data.len(),
            });
        }
        self.add(path, mode, Kind::File(data))
    }

    /// Adds a symbolic link to `target` (stored verbatim: absolute targets
    /// resolve inside the guest's root). Symlinks always have mode 0777.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        if target.is_empty() || target.contains('\0') {
            return Err(CpioError::BadSymlinkTarget {
                path: path.to_string(),
            });
        }
        self.add(path, 0o777, Kind::Symlink(target.to_string()))
    }

    /// Adds a character device node, e.g. `/dev/console` (5, 1), which the
    /// kernel opens for init's stdio before devtmpfs is mounted.
    pub fn add_char_dev(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.add(path, mode, Kind::CharDev { major, minor })
    }

    /// Number of entries so far, implicit parent directories included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn add(&mut self, path: &str, mode: u32, kind: Kind) -> Result<(), CpioError> {
        let components = normalize(path)?;
        let perm = check_mode(path, mode, &kind)?;

        // Parents first: each must be (or become) a directory.
        for depth in 1..components.len() {
            let parent = &components[..depth];
            match self.entries.get(parent) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(CpioError::ParentNotDir {
                        path: path.to_string(),
                        parent: parent.join("/"),
                    });
                }
                None => {
                    self.entries.insert(
                        parent.to_vec(),
                        Entry {
                            kind: Kind::Dir,
                            perm: IMPLICIT_DIR_MODE,
                            implicit: true,
                        },
                    );
                }
            }
        }

        let new = Entry {
            kind,
            perm,
            implicit: false,
        };
        match self.entries.get_mut(&components) {
            None => {
                self.entries.insert(components, new);
                Ok(())
            }
            // An explicit directory replaces an implicit one.
            Some(old) if old.implicit && new.kind == Kind::Dir => {
                *old = new;
                Ok(())
            }
            Some(old) if *old == new => Ok(()),
            Some(_) => Err(CpioError::Conflict {
                path: path.to_string(),
            }),
        }
    }

    /// Writes the archive: entries in path order with inode numbers 1, 2, …
    /// in that order, then the trailer, zero-padded to 512 bytes.
    pub fn finish(&self) -> Result<Vec<u8>, CpioError> {
        let mut out = Vec::new();
        for (ino, (components, entry)) in (1u32..).zip(&self.entries) {
            let name = components.join("/");
            let (data, nlink, rdev): (&[u8], u32, (u32, u32)) = match &entry.kind {
                Kind::Dir => (&[], 2, (0, 0)),
                Kind::File(data) => (data, 1, (0, 0)),
                Kind::Symlink(target) => (target.as_bytes(), 1, (0, 0)),
                Kind::CharDev { major, minor } => (&[], 1, (*major, *minor)),
            };
            let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
                path: name.clone(),
                size: data.len(),
            })?;
            let header = Header {
                ino,
                mode: entry.kind.type_bits() | entry.perm,
                nlink,
                filesize: size,
                rdev,
            };
            write_entry(&mut out, &header, &name, data);
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            filesize: 0,
            rdev: (0, 0),
        };
        write_entry(&mut out, &trailer, TRAILER, &[]);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
        Ok(out)
    }
}

/// One entry of an archive read back by [`read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    /// The stored (relative) name, `TRAILER!!!` for the trailer.
    pub name: String,
    /// The thirteen header fields in newc order: ino, mode, uid, gid,
    /// nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
    /// namesize, check.
    pub fields: [u32; 13],
    pub data: Vec<u8>,
}

impl ReadEntry {
    /// A regular file's permission bits, or None for any other entry.
    pub fn file_mode(&self) -> Option<u32> {
        (self.fields[1] & S_IFMT == S_IFREG).then_some(self.fields[1] & 0o7777)
    }
}

/// Reads a newc archive as [`CpioBuilder::finish`] writes it: every
/// entry in order, the trailer last; headers 4-aligned with zero padding,
/// nothing but zeros after the trailer. Anything else is an error naming
/// the offset.
pub fn read(archive: &[u8]) -> Result<Vec<ReadEntry>, CpioError> {
    let bad = |at: usize, why: &str| CpioError::Malformed {
        at,
        why: why.to_string(),
    };
    let zeros = |b: &[u8]| b.iter().all(|&x| x == 0);
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let header = archive
            .get(at..at + HEADER_LEN)
            .ok_or_else(|| bad(at, "archive ends inside a header (no trailer)"))?;
        if &header[..6] != MAGIC.as_bytes() {
            return Err(bad(at, "bad magic"));
        }
        let mut fields = [0u32; 13];
        for (i, f) in fields.iter_mut().enumerate() {
            let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i])
                .ok()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(at, "header field is not hex"))?;
            *f = hex;
        }
        let name_end = at + HEADER_LEN + fields[11] as usize;
        let data_start = name_end.next_multiple_of(4);
        let data_end = data_start + fields[6] as usize;
        let next = data_end.next_multiple_of(4);
        let (Some(name), Some(pad), Some(data), Some(tail)) = (
            archive.get(at + HEADER_LEN..name_end),
            archive.get(name_end..data_start),
            archive.get(data_start..data_end),
            archive.get(data_end..next),
        ) else {
            return Err(bad(at, "archive ends inside an entry"));
        };
        let Some((0, name)) = name.split_last() else {
            return Err(bad(at, "name not NUL-terminated"));
        };
        if !zeros(pad) || !zeros(tail) {
            return Err(bad(at, "padding is not zeros"));
        }
        let name = String::from_utf8(name.to_vec()).map_err(|_| bad(at, "name is not UTF-8"))?;
        let done = name == TRAILER;
        out.push(ReadEntry {
            name,
            fields,
            data: data.to_vec(),
        });
        at = next;
        if done {
            if !zeros(&archive[at..]) || !archive.len().is_multiple_of(BLOCK) {
                return Err(bad(
                    at,
                    "not zero-padded to a 512-byte block after the trailer",
                ));
            }
            return Ok(out);
        }
    }
}

/// Turns a guest path into its components: leading `/`, empty and `.`
/// components are dropped; `..` and NUL are rejected because the archive
/// must describe exactly one tree under the root.
fn normalize(path: &str) -> Result<Vec<String>, CpioError> {
    if path.contains('\0') {
        return Err(CpioError::Nul {
            path: path.to_string(),
        });
    }
    let mut components = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(CpioError::DotDot {
                    path: path.to_string(),
                })
            }
            c => components.push(c.to_string()),
        }
    }
    if components.is_empty() {
        return Err(CpioError::EmptyPath {
            path: path.to_string(),
        });
    }
    Ok(components)
}

/// Returns the permission bits of `mode`. File-type bits are accepted only
/// if they match `kind` (so `st_mode` values copied from the host work),
/// anything else is an error rather than silently masked.
fn check_mode(path: &str, mode: u32, kind: &Kind) -> Result<u32, CpioError> {
    let ty = mode & S_IFMT;
    if mode & !(S_IFMT | 0o7777) != 0 || (ty != 0 && ty != kind.type_bits()) {
        return Err(CpioError::BadMode {
            path: path.to_string(),
            mode,
        });
    }
    Ok(mode & 0o7777)
}

/// The fields of a newc header that vary between our entries; the rest
/// (uid, gid, mtime, dev, check) are always 0.
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev: (u32, u32),
}

fn write_entry(out: &mut Vec<u8>, h: &Header, name: &str, data: &[u8]) {
    let namesize = name.len() + 1;
    let fields = [
        h.ino,
        h.mode,
        0, // uid
        0, // gid
        h.nlink,
        0, // mtime
        h.filesize,
        0, // devmajor
        0, // devminor
        h.rdev.0,
        h.rdev.1,
        namesize as u32,
        0, // check (only used by the "crc" variant, 070702)
    ];
    let start = out.len();
    out.extend_from_slice(MAGIC.as_bytes());
    for v in fields {
        out.extend_from_slice(format!("{v:08X}").as_bytes());
    }
    debug_assert_eq!(out.len() - start, HEADER_LEN);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Every header starts at a multiple of 4 in the archive, so padding the
/// whole buffer to 4 pads the name (header + name) and the data alike.
fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Vec<ReadEntry> {
        read(buf).unwrap()
    }

    fn sample() -> CpioBuilder {
        let mut c = CpioBuilder::new();
        c.add_file("/init", 0o755, b"#!/bin/sh\n".to_vec()).unwrap();
        c.add_char_dev("/dev/console", 0o600, 5, 1).unwrap();
        c.add_symlink("/bin/sh", "busybox").unwrap();
        c.add_file("/ksh/expect/a.txt", 0o644, b"abc".to_vec())
            .unwrap();
        c.add_dir("/ksh", 0o700).unwrap();
        c
    }

    #[test]
    fn layout_order_and_fields() {
        let entries = parse(&sample().finish().unwrap());
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "init",
                "ksh",
                "ksh/expect",
                "ksh/expect/a.txt",
                TRAILER
            ]
        );
        for (i, e) in entries.iter().enumerate().take(entries.len() - 1) {
            assert_eq!(e.fields[0], i as u32 + 1, "inode of {}", e.name);
            assert_eq!(&e.fields[2..4], &[0, 0], "uid/gid of {}", e.name);
            assert_eq!(e.fields[5], 0, "mtime of {}", e.name);
        }
        let by = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(by("bin").fields[1], 0o040755, "implicit dir mode");
        assert_eq!(by("bin").fields[4], 2, "dir nlink");
        assert_eq!(
            by("ksh").fields[1],
            0o040700,
            "explicit mode overrides implicit"
        );
        assert_eq!(by("bin/sh").fields[1], 0o120777);
        assert_eq!(by("bin/sh").data, b"busybox");
        assert_eq!(by("dev/console").fields[1], 0o020600);
        assert_eq!(&by("dev/console").fields[9..11], &[5, 1]);
        assert_eq!(by("init").fields[1], 0o100755);
        assert_eq!(by("init").fields[4], 1);
        assert_eq!(by("init").data, b"#!/bin/sh\n");
        assert_eq!(by("ksh/expect/a.txt").data, b"abc");
        let t = by(TRAILER);
        assert_eq!(t.fields[..11], [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn empty_archive_is_just_the_trailer() {
        let entries = parse(&CpioBuilder::new().finish().unwrap());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, TRAILER);
    }

    #[test]
    fn deterministic_regardless_of_insertion_order() {
        let a = sample().finish().unwrap();
        let mut c = CpioBuilder::new();
        c.add_dir("ksh", 0o700).unwrap();
        c.add_file("ksh/expect/a.txt", 0o644, b"abc".to_vec())
            .unwrap();
        c.add_symlink("bin//sh", "busybox").unwrap();
        c.add_file("./init", 0o755, b"#!/bin/sh\n".to_vec())
            .unwrap();
        c.add_char_dev("dev/console", 0o600, 5, 1).unwrap();
        assert_eq!(a, c.finish().unwrap());
    }

    #[test]
    fn name_and_data_padding() {
        // Name lengths 1..=4 and data lengths 0..=4 cover every padding case.
        let mut c = CpioBuilder::new();
        for n in 1..=4 {
            for d in 0..=4 {
                let name = format!("{}{d}", "x".repeat(n));
                c.add_file(&name, 0o644, vec![b'z'; d]).unwrap();
            }
        }
        let entries = parse(&c.finish().unwrap());
        assert_eq!(entries.len(), 21);
        for e in &entries[..20] {
            let d: usize = e.name[e.name.len() - 1..].parse().unwrap();
            assert_eq!(e.data, vec![b'z'; d]);
        }
    }

    #[test]
    fn validation_errors() {
        let mut c = CpioBuilder::new();
        assert!(matches!(
            c.add_dir("/", 0o755),
            Err(CpioError::EmptyPath { .. })
        ));
        assert!(matches!(
            c.add_dir("", 0o755),
            Err(CpioError::EmptyPath { .. })
        ));
        assert!(matches!(
            c.add_file("/a/../etc", 0o644, vec![]),
            Err(CpioError::DotDot { .. })
        ));
        assert!(matches!(
            c.add_file("a\0b", 0o644, vec![]),
            Err(CpioError::Nul { .. })
        ));
        assert!(matches!(
            c.add_file("f", 0o10644, vec![]),
            Err(CpioError::BadMode { .. })
        ));
        assert!(matches!(
            c.add_file("f", 0o040644, vec![]),
            Err(CpioError::BadMode { .. })
        ));
        assert!(matches!(
            c.add_symlink("l", ""),
            Err(CpioError::BadSymlinkTarget { .. })
        ));
        // Type bits that match the kind are fine.
        c.add_file("f", 0o100644, b"1".to_vec()).unwrap();
        // Identical re-adds are fine, different ones are not.
        c.add_file("/f", 0o644, b"1".to_vec()).unwrap();
        let err = c.add_file("f", 0o644, b"2".to_vec()).unwrap_err();
        assert_eq!(err, CpioError::Conflict { path: "f".into() });
        assert!(err.to_string().contains("added twice"), "{err}");
        assert!(matches!(
            c.add_file("f", 0o600, b"1".to_vec()),
            Err(CpioError::Conflict { .. })
        ));
        assert!(matches!(
            c.add_dir("f", 0o755),
            Err(CpioError::Conflict { .. })
        ));
        assert!(matches!(
            c.add_file("f/g", 0o644, vec![]),
            Err(CpioError::ParentNotDir { .. })
        ));
        c.add_dir("d", 0o755).unwrap();
        c.add_dir("d", 0o755).unwrap();
        assert!(matches!(
            c.add_dir("d", 0o700),
            Err(CpioError::Conflict { .. })
        ));
        // A file cannot replace an implicitly created directory either.
        c.add_file("p/q", 0o644, vec![]).unwrap();
        assert!(matches!(
            c.add_file("p", 0o644, vec![]),
            Err(CpioError::Conflict { .. })
        ));
        // Errors leave the archive as it was.
        let names: Vec<_> = parse(&c.finish().unwrap())
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["d", "f", "p", "p/q", TRAILER]);
    }

    #[test]
    fn the_reader_gives_back_what_was_written_and_refuses_the_rest() {
        let a = sample().finish().unwrap();
        let e = read(&a).unwrap();
        let files: Vec<_> = e
            .iter()
            .filter_map(|e| Some((e.name.as_str(), e.file_mode()?, &e.data[..])))
            .collect();
        assert_eq!(
            files,
            [
                ("init", 0o755, &b"#!/bin/sh\n"[..]),
                ("ksh/expect/a.txt", 0o644, &b"abc"[..])
            ]
        );
        let err = |b: &[u8]| read(b).unwrap_err().to_string();
        assert!(err(&a[..100]).contains("ends inside"), "{}", err(&a[..100]));
        assert!(read(&a[..a.len() - 4]).is_err());
        assert!(err(&a[1..]).contains("bad magic"));
        let mut junk = a.clone();
        *junk.last_mut().unwrap() = 1;
        assert!(err(&junk).contains("after the trailer"));
        let mut pad = a.clone();
        // The name "bin" (4 bytes with its NUL) needs 2 bytes of padding.
        pad[HEADER_LEN + 4] = b'x';
        assert!(err(&pad).contains("padding"), "{}", err(&pad));
    }
}
