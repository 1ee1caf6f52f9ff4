//! Stage 2, the guest payload: the expectations computed from the build,
//! the static `/init`, the probe module, busybox for `cargo xtask run`, and
//! the initramfs (our own cpio writer) that carries them.

pub mod busybox;
pub mod cpio;
pub mod expect;
pub mod guestbin;
pub mod initramfs;
pub mod probemod;
