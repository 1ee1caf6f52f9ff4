//! Host side of the kallsyms test harness. See ARCHITECTURE.md for the map;
//! in data-flow order:
//! `prereqs` → `source` (+ `series`) → `kconfig` → `kbuild` → `symbols`
//! (expectations) → `guestbin` + `initramfs` (+ `cpio`) → `accel` + `qemu`
//! → `ktap` → `report`, orchestrated per cell by `testrun`.

pub mod accel;
pub mod arch;
pub mod bootlog;
pub mod busybox;
pub mod cpio;
pub mod expect;
pub mod explore;
pub mod footprint;
pub mod guestbin;
pub mod initramfs;
pub mod kbuild;
pub mod kconfig;
pub mod ktap;
pub mod layout;
pub mod mutants;
pub mod prereqs;
pub mod probemod;
pub mod proc;
pub mod qemu;
pub mod report;
pub mod series;
pub mod source;
pub mod symbols;
pub mod testrun;
