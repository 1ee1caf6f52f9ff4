//! Stage 3, the VM: per-arch profiles as data, the accelerator choice, and
//! QEMU (its command line, the bounded runner, the interactive console).

pub mod accel;
pub mod arch;
pub mod interactive;
pub mod qemu;
pub mod qmp;
