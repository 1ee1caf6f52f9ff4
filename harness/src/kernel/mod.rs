//! Stage 1, the kernel: host prerequisites, the source tree (Debian's
//! tarball plus the patch series, or a user's tree), the configuration and
//! the build; also the known-bad kernels (mutants) planted in a tree.

pub mod debian_suite;
pub mod generator_check;
pub mod kbuild;
pub mod kconfig;
pub mod linkstable;
pub mod mutants;
pub mod prereqs;
pub mod series;
pub mod source;
