//! Stage 3, the VM: the accelerator choice and QEMU (its command line, the
//! bounded runner, the interactive console), from the arch profiles of
//! [`crate::cell::arch`].

pub mod accel;
pub mod interactive;
pub mod qemu;
pub mod qmp;
