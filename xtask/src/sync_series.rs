//! `cargo xtask sync-series`: copy `kallsyms-gen/src/main.rs` into the patch
//! that adds `scripts/kallsyms.rs`, so the crate stays the one source of truth.

use anyhow::Result;
use harness::{layout, series, source};

pub fn run() -> Result<i32> {
    let dir = layout::patches_dir(source::BASE_VERSION);
    let main_rs = layout::project_root().join("kallsyms-gen/src/main.rs");
    if series::sync_generator(&dir, &main_rs)? {
        println!(
            "updated the generator patch in {} from {}",
            dir.display(),
            main_rs.display()
        );
    } else {
        println!("the generator patch already matches {}", main_rs.display());
    }
    Ok(0)
}
