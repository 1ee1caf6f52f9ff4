//! Per-architecture facts, as data: one small profile per architecture.
//!
//! Everything that differs between x86_64 and arm64 (kernel `ARCH`, cross
//! compiler, guest Rust target, QEMU machine/CPU/devices, console, how the
//! guest powers off) lives here, so the rest of the harness has no
//! `if arch == ...`. To change the arm64 QEMU machine type, edit
//! [`ARM64`]`.qemu.machine`.

use anyhow::{bail, Result};

/// QEMU settings for one architecture.
#[derive(Debug, Clone, Copy)]
pub struct QemuProfile {
    /// The system emulator binary.
    pub binary: &'static str,
    /// `-machine` value.
    pub machine: &'static str,
    /// `-cpu` value under TCG.
    pub cpu_tcg: &'static str,
    /// `-cpu` value under KVM.
    pub cpu_kvm: &'static str,
    /// Extra `-accel tcg,...` options (multi-threaded TCG where it helps).
    pub tcg_opts: &'static str,
    /// Memory for the guest, in MiB.
    pub memory_mib: u32,
    /// Kernel command-line `console=` for the serial console.
    pub console: &'static str,
    /// Extra kernel command-line words.
    pub cmdline_extra: &'static str,
    /// The virtio-serial controller device (over MMIO on both: x86_64's
    /// `microvm` has no PCI, arm64's `virt` gets virtio-mmio transports).
    pub virtio_serial_device: &'static str,
    /// Whether KVM can apply at all (host and guest share the ISA).
    pub kvm_possible: bool,
    /// For a machine without a power-off device: the I/O port of the
    /// `isa-debug-exit` device the harness adds, through which the guest
    /// ends each run (`ksh_proto::EXIT_PORT_PARAM` on the command line).
    /// `None`: the guest powers the machine off.
    pub debug_exit_port: Option<u16>,
    /// The kernel parameter that gives the guest its timestamp counter's
    /// rate in kHz instead of calibrating it (x86's `tsc_early_khz`), set
    /// under TCG from the host's (`qemu::guest_tsc_khz`). `None`: the arch
    /// has a counter whose rate the machine declares (arm64's CNTFRQ).
    pub tsc_khz_param: Option<&'static str>,
}

/// Everything the harness needs to know about one architecture.
#[derive(Debug, Clone, Copy)]
pub struct ArchProfile {
    /// Name used in test names, directories and `--arch` (`x86_64`, `arm64`).
    pub name: &'static str,
    /// The kernel's `ARCH=` value.
    pub kernel_arch: &'static str,
    /// `CROSS_COMPILE=` prefix ("" for a native build on an x86_64 host).
    pub cross_compile: &'static str,
    /// Path of the bootable image inside the build dir.
    pub image: &'static str,
    /// Rust target of the static guest programs.
    pub rust_target: &'static str,
    /// The Kconfig fragment under `kernel-configs/`.
    pub config_fragment: &'static str,
    /// Debian's name for the arch (`dpkg --print-architecture`): the
    /// guest's busybox for `cargo xtask run` is Debian's `busybox-static`
    /// of this arch.
    pub debian_arch: &'static str,
    /// ELF `e_machine` of the arch's binaries.
    pub elf_machine: u16,
    /// The gdb that debugs this arch's guest from an x86_64 host (with the
    /// Debian package that provides it), for `--gdb`.
    pub gdb: (&'static str, &'static str),
    /// Host commands this arch needs beyond the common build tools, each
    /// with the Debian package that provides it.
    pub host_tools: &'static [(&'static str, &'static str)],
    pub qemu: QemuProfile,
}

/// Arches are told apart by their name.
impl PartialEq for ArchProfile {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ArchProfile {}

impl std::hash::Hash for ArchProfile {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.name.hash(h)
    }
}

pub const X86_64: ArchProfile = ArchProfile {
    name: "x86_64",
    kernel_arch: "x86_64",
    cross_compile: "",
    // The ELF vmlinux, booted through its PVH entry (see x86_64.config).
    image: "vmlinux",
    rust_target: "x86_64-unknown-linux-musl",
    config_fragment: "x86_64.config",
    debian_arch: "amd64",
    gdb: ("gdb", "gdb"),
    elf_machine: 62,
    host_tools: &[("qemu-system-x86_64", "qemu-system-x86")],
    qemu: QemuProfile {
        binary: "qemu-system-x86_64",
        // microvm: no PCI, no ACPI, no firmware tables to parse, virtio
        // over MMIO (QEMU adds the `virtio_mmio.device=` words to the
        // command line), the ISA serial port as console. The kernel then
        // needs neither ACPI nor PCI: about 300 fewer objects to compile
        // than on q35, and a shorter boot under TCG (null boot, median of
        // 5 side by side: 2.6 s against 3.1 s). Keep the RTC: without it
        // the kernel's boot-time CMOS read waits a second before giving up.
        machine: "microvm,acpi=off,rtc=on,isa-serial=on,x-option-roms=off",
        cpu_tcg: "max",
        cpu_kvm: "host",
        tcg_opts: ",thread=multi",
        memory_mib: 256,
        console: "ttyS0",
        // reboot=t: without ACPI or a keyboard controller, a triple fault
        // is the reset that works (the fallback should the debug-exit port
        // fail); say so rather than let the kernel try the others first.
        // tsc=reliable: under TCG the clocksource
        // watchdog finds the TSC "skewed" against jiffies mid-run and
        // switches clocksource, with a screenful of console lines.
        cmdline_extra: "reboot=t tsc=reliable",
        virtio_serial_device: "virtio-serial-device",
        kvm_possible: true,
        debug_exit_port: Some(0xf4),
        // microvm has no HPET or ACPI PM timer, so the kernel calibrates the
        // TSC against the PIT alone; on a busy host that fails ("tsc: Unable
        // to calibrate against PIT") and the guest's clock becomes jiffies,
        // 4 ms steps: the probes' and lookup-bench's times were then steps
        // of 4 ms (lookup_ns=4000, sized_lookup_ns=0.0).
        tsc_khz_param: Some("tsc_early_khz"),
    },
};

pub const ARM64: ArchProfile = ArchProfile {
    name: "arm64",
    kernel_arch: "arm64",
    cross_compile: "aarch64-linux-gnu-",
    image: "arch/arm64/boot/Image",
    rust_target: "aarch64-unknown-linux-musl",
    config_fragment: "arm64.config",
    debian_arch: "arm64",
    gdb: ("gdb-multiarch", "gdb-multiarch"),
    elf_machine: 183,
    host_tools: &[
        ("qemu-system-aarch64", "qemu-system-arm"),
        ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    ],
    qemu: QemuProfile {
        binary: "qemu-system-aarch64",
        machine: "virt",
        // pauth-impdef: QEMU's default pointer-authentication algorithm is
        // very slow under TCG; the implementation-defined one is fast.
        cpu_tcg: "max,pauth-impdef=on",
        cpu_kvm: "host",
        tcg_opts: ",thread=multi",
        memory_mib: 256,
        console: "ttyAMA0",
        cmdline_extra: "",
        virtio_serial_device: "virtio-serial-device",
        kvm_possible: false,
        debug_exit_port: None,
        tsc_khz_param: None,
    },
};

/// All architectures, in the order the harness runs them.
pub const ALL: &[&ArchProfile] = &[&X86_64, &ARM64];

/// Finds an architecture by name; the error lists the valid ones.
pub fn by_name(name: &str) -> Result<&'static ArchProfile> {
    match ALL.iter().find(|a| a.name == name) {
        Some(a) => Ok(a),
        None => bail!(
            "unknown architecture '{name}'; valid: {}",
            ALL.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_arch_lists_valid_ones() {
        let err = by_name("riscv").unwrap_err().to_string();
        assert!(err.contains("x86_64, arm64"), "{err}");
        assert_eq!(by_name("arm64").unwrap().kernel_arch, "arm64");
    }
}
