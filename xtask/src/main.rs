//! `cargo xtask`: the harness's command line. One module per subcommand;
//! flags live in `flags.rs`; the work happens in the `harness` library.

mod bench;
mod bisect;
mod bisect_selftest;
mod build;
mod check_series;
mod faults;
mod flags;
mod judge;
mod matrix;
mod mutants;
mod run;
mod selection;
mod sensitivity;
mod summary;
mod sync_series;
mod test;

use clap::Parser;

fn main() {
    let cli = flags::Cli::parse();
    harness::process::install_interrupt_handler();
    let result = match cli.command {
        flags::Cmd::Test(args) => test::run(args),
        flags::Cmd::Run(args) => run::run(args),
        flags::Cmd::Build(args) => build::run(args),
        flags::Cmd::CheckSeries(args) => check_series::run(args),
        flags::Cmd::SyncSeries(args) => sync_series::run(args),
        flags::Cmd::Matrix(args) => matrix::run(args),
        flags::Cmd::Summary(args) => summary::run(args),
        flags::Cmd::Sensitivity(args) => sensitivity::run(args),
        flags::Cmd::Bisect(args) => bisect::run(args),
        flags::Cmd::BisectStep(args) => bisect::step(args),
        flags::Cmd::BisectSelftest(args) => bisect_selftest::run(args),
        flags::Cmd::Bench(args) => bench::run(args),
        flags::Cmd::Mutants(args) => mutants::run(args),
        flags::Cmd::Faults(args) => faults::run(args),
        flags::Cmd::Judge(args) => judge::run(args),
    };
    if harness::process::interrupted() {
        harness::process::wait_for_interrupt_handler();
    }
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
