//! The guest side of `cargo xtask run`: an interactive shell in the kernel
//! under test, `ksh-probe NAME` (one probe, as the test run runs it) and
//! `ksh-lookup ADDR|NAME` (what the kernel says about an address, through
//! the probe module, next to what the host's ground truth says).

use std::collections::HashMap;
use std::process::Command;

use ksh_proto::files::{KallsymsLine, Line as _};
use ksh_proto::lookup::Table;

use crate::sys;
use crate::{expect, kaslr, probe_module};

/// PID 1 of `cargo xtask run`: busybox applets, the terminal size, a
/// banner, then a login shell on the console's tty; power-off when it ends.
pub fn shell_session(cmdline: &str, module_status: &str) -> ! {
    let bb = ksh_proto::SHELL_BUSYBOX;
    match Command::new(bb).args(["--install", "-s", "/bin"]).status() {
        Ok(st) if st.success() => {}
        Ok(st) => eprintln!("ksh-init: {bb} --install: {st}"),
        Err(e) => {
            eprintln!("ksh-init: cannot run {bb}: {e}; powering off");
            sys::power_off();
        }
    }
    sys::power_off_on_init_signals();
    let _ = std::fs::create_dir_all("/root");
    let _ = std::fs::create_dir_all("/tmp");
    if let (Some(c), Some(r)) = (
        ksh_proto::cmdline_value(cmdline, ksh_proto::SHELL_COLS_PARAM).and_then(|v| v.parse().ok()),
        ksh_proto::cmdline_value(cmdline, ksh_proto::SHELL_ROWS_PARAM).and_then(|v| v.parse().ok()),
    ) {
        sys::set_console_size(c, r);
    }
    let build = expect::build_info();
    println!();
    println!(
        "ksh: {} kernel {}, {} kallsyms symbols; probe module: {module_status}",
        crate::sys::arch(),
        build.get("kernel_release").unwrap_or("?"),
        build.get(ksh_proto::SYMBOLS_KEY).unwrap_or("?"),
    );
    println!("ksh: ksh-probe NAME reruns one probe (ksh-probe alone lists them);");
    println!("ksh: ksh-lookup ADDR|NAME asks the kernel and the host's ground truth;");
    println!(
        "ksh: expectations in {}; exit or poweroff ends the VM (Ctrl-a x: QEMU).",
        ksh_proto::EXPECT_DIR
    );
    let status = Command::new(bb)
        .args(["setsid", "cttyhack", "sh", "-l"])
        .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
        .env("HOME", "/root")
        .env("PS1", "ksh-guest:\\w# ")
        .env("TERM", "vt100")
        .status();
    if let Err(e) = status {
        eprintln!("ksh-init: cannot start the shell: {e}");
    }
    sys::power_off();
}

/// `ksh-probe` without a name: the probes and their cases.
pub fn list_probes() {
    println!("usage: ksh-probe NAME   (KTAP on stdout, no timeout; Ctrl-C stops it)");
    for p in ksh_proto::PROBES {
        println!("  {:<18} {}", p.name, p.cases.join(" "));
    }
}

/// The host's ground truth: the expected kallsyms table with the ELF sizes
/// of sizes.txt, under the size-aware rule ([`ksh_proto::lookup`]).
struct GroundTruth {
    kallsyms: String,
    sizes: HashMap<(u64, String), u64>,
}

impl GroundTruth {
    fn load() -> Result<GroundTruth, String> {
        let kallsyms = std::fs::read_to_string(ksh_proto::files::FileId::Kallsyms.path())
            .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::Kallsyms.path()))?;
        let sizes_text = std::fs::read_to_string(ksh_proto::files::FileId::Sizes.path())
            .map_err(|e| format!("{}: {e}", ksh_proto::files::FileId::Sizes.path()))?;
        let mut sizes = HashMap::new();
        for g in ksh_proto::sizes::parse(&sizes_text)? {
            for (name, size, _) in g.sized {
                sizes.insert((g.addr, name.to_string()), size);
            }
        }
        Ok(GroundTruth { kallsyms, sizes })
    }

    /// (address, name) of every expected symbol, in table order.
    fn entries(&self) -> impl Iterator<Item = (u64, &str)> {
        self.kallsyms
            .lines()
            .filter_map(|l| KallsymsLine::parse(l).ok())
            .map(|k| (k.addr, k.name))
    }

    fn table(&self) -> Table<'_> {
        Table::new(
            self.entries()
                .map(|(a, n)| (a, n, self.sizes.get(&(a, n.to_string())).copied())),
        )
    }
}

/// `ksh-lookup ARG...`: each ARG a runtime address (hex, `0x` optional) or
/// a symbol name. Returns the exit code: 0 when every kernel answer agrees
/// with the host's, 1 when one differs, 2 on an error.
pub fn lookup(args: &[String]) -> i32 {
    if args.is_empty() {
        println!("usage: ksh-lookup ADDR|NAME...  (ADDR: runtime address in hex, as /proc/kallsyms shows it)");
        return 2;
    }
    let truth = match GroundTruth::load() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ksh-lookup: {e}");
            return 2;
        }
    };
    let offset = match kaslr::kaslr_offset() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ksh-lookup: KASLR offset: {e}");
            return 2;
        }
    };
    let table = truth.table();
    let mut code = 0;
    for arg in args {
        let addrs: Vec<u64> = match probe_module::hex(arg) {
            Ok(a) if arg.len() >= 8 || arg.starts_with("0x") => vec![a],
            _ => {
                let found: Vec<u64> = truth
                    .entries()
                    .filter(|(_, n)| n == arg)
                    .map(|(a, _)| a.wrapping_add(offset))
                    .collect();
                if found.is_empty() {
                    println!(
                        "{arg}: not in the expected table ({})",
                        ksh_proto::files::FileId::Kallsyms.path()
                    );
                    code = code.max(1);
                    continue;
                }
                found
            }
        };
        for runtime in addrs {
            let link = runtime.wrapping_sub(offset);
            println!("{arg}: address {runtime:#x} (link-time {link:#x}, KASLR offset {offset:#x})");
            let host = table.find(link);
            let host_text = match host {
                Some(f) => format!("{}+{:#x}/{:#x}", f.name, link - f.start, f.size),
                None => "no symbol".to_string(),
            };
            let (kernel_text, ps) = match probe_module::lookup_one(runtime) {
                Ok(l) => {
                    let k = if l.found {
                        let m = l
                            .module
                            .as_deref()
                            .map(|m| format!(" [{m}]"))
                            .unwrap_or_default();
                        format!("{}+{:#x}/{:#x}{m}", l.name, l.offset, l.size)
                    } else {
                        "no symbol".to_string()
                    };
                    (k, l.ps)
                }
                Err(e) => {
                    code = 2;
                    (format!("(error: {e})"), String::new())
                }
            };
            println!("  kernel  {kernel_text}   %pS {ps}");
            println!("  host    {host_text}   (kallsyms.txt + sizes.txt, size-aware rule)");
            let agree = kernel_text.split(" [").next() == Some(host_text.as_str());
            if !agree && code < 2 {
                code = 1;
            }
            println!("  {}", if agree { "same" } else { "DIFFERENT" });
        }
    }
    code
}
