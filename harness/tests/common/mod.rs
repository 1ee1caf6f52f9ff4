//! What the tests on real kernel build dirs share.

use std::path::PathBuf;

/// The kernel build dirs to test, each holding every file of `needs`
/// (e.g. `vmlinux`). From `KSH_BUILD_DIRS` (colon separated): when set,
/// every listed dir must qualify (CI sets it; a missing build is a
/// failure, not a skip). When unset, `/tmp/kb/x86_64` and `/tmp/kb/arm64`
/// if they qualify; with neither the test fails.
pub fn build_dirs(needs: &[&str]) -> Vec<PathBuf> {
    let finished = |d: &PathBuf| needs.iter().all(|f| d.join(f).is_file());
    if let Ok(v) = std::env::var("KSH_BUILD_DIRS") {
        let dirs: Vec<PathBuf> = v
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        assert!(!dirs.is_empty(), "KSH_BUILD_DIRS is set but empty");
        for d in &dirs {
            assert!(
                finished(d),
                "KSH_BUILD_DIRS: {} is not a finished build dir (it needs {})",
                d.display(),
                needs.join(", ")
            );
        }
        return dirs;
    }
    let dirs: Vec<PathBuf> = ["/tmp/kb/x86_64", "/tmp/kb/arm64"]
        .iter()
        .map(PathBuf::from)
        .filter(finished)
        .collect();
    assert!(
        !dirs.is_empty(),
        "no build dir: set KSH_BUILD_DIRS (colon-separated kernel build dirs; .ci/run sets it) \
         or build into /tmp/kb/x86_64 or /tmp/kb/arm64"
    );
    dirs
}
