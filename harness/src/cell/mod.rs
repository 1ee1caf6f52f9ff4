//! The ground floor: the project's core nouns, which every stage above
//! uses and none of them owns. An arch's profile ([`arch`]), the compiler
//! ([`toolchain`]), the supported kernel lines as data ([`kernel`]), the
//! cell those and a config variant, a kernel and a
//! source make ([`CellId`]: the one place its labels, directory names,
//! JUnit suite names and test-name prefixes are built and parsed), a
//! case's name ([`TestName`]) and its outcome ([`Status`], with a typed
//! [`FailKind`]).
//!
//! Nothing here imports a stage (`kernel`, `symbols`, `payload`, `vm`,
//! `results`): they all import from here.

pub mod arch;
mod id;
pub mod kernel;
mod name;
mod status;
pub mod toolchain;

pub use arch::ArchProfile;
pub use id::{CellId, SourceKey, SourceKind};
pub use kernel::{Kernel, KernelLine, KERNELS};
pub use name::{
    TestName, BUILD_CASE, BUILD_CASES, GENERATORS_CASE, LINK_STABLE_CASE, VM_CASE, WARNINGS_CASE,
};
pub use status::{FailKind, Status};
pub use toolchain::Toolchain;
