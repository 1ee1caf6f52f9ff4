//! Host side of the kallsyms test harness. See ARCHITECTURE.md for the map.
//! [`cell`] is the ground floor: the nouns every stage shares (arch
//! profiles, toolchains, the cell, test names, statuses). Above it the
//! folders are the stages, in data-flow order:
//! [`kernel`] (prereqs → source + series → kconfig → kbuild) → [`symbols`]
//! (ground truth from the ELF) → [`payload`] (expectations, `/init`, probe
//! module, initramfs) → [`vm`] (accelerator, QEMU) → [`results`] (KTAP,
//! boot log, report). [`testrun`] runs them for one cell of `cargo xtask
//! test`, [`shell`] for `cargo xtask run`; [`layout`] (the cache) and
//! [`process`] (child processes, Ctrl-C) serve every floor. A module imports
//! only from floors below its own (and from `layout` and `process`).

pub mod cell;
pub mod kernel;
pub mod layout;
pub mod payload;
pub mod process;
pub mod results;
pub mod shell;
pub mod symbols;
pub mod testrun;
pub mod vm;
