//! Stage 4, results: the guest's KTAP stream parsed, the console checked
//! for kernel warnings, every verdict given by one pure judge (and what a
//! run dir keeps so it can judge again), and every case reported
//! (libtest, JUnit).

pub mod bootlog;
pub mod judge;
pub mod ktap;
pub mod report;
pub mod run_record;
