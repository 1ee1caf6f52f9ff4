//! Stage 4, results: the guest's KTAP stream parsed, the console checked
//! for kernel warnings, and every case reported (libtest, JUnit).

pub mod bootlog;
pub mod ktap;
pub mod report;
