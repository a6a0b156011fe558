//! Helpers the unit tests share (compiled for tests only): one way to skip a test that needs something
//! the machine lacks, and one way to find the shared data beside the repository.

use std::path::PathBuf;

/// Skips a test that needs something this machine lacks, saying so; with
/// `CHAOSLAB_REQUIRE_EXTERNALS=1` (CI sets it) the missing requirement fails the test instead, so a
/// broken install cannot pass as a skip.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("CHAOSLAB_REQUIRE_EXTERNALS").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and CHAOSLAB_REQUIRE_EXTERNALS=1 forbids skipping");
    }
    eprintln!("SKIP {test}: {why}");
}

/// `$CHAOSLAB_SHARED`, else `../shared` beside the crate: the reference files and datasets.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("CHAOSLAB_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// A file under [`shared_dir`], or `None` after [`skip`] said why.
pub fn shared_file(test: &str, relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    if path.is_file() {
        return Some(path);
    }
    skip(test, &format!("{} not found (set CHAOSLAB_SHARED)", path.display()));
    None
}
