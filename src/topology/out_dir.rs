//! The run's output directory: created, or cleared when an earlier chaoslab run wrote it; a non-empty
//! directory chaoslab did not create is refused, never emptied.

use std::path::Path;

use anyhow::Context as _;

/// The marker that tells a directory was written by chaoslab and may be reused.
pub const OUT_MARKER: &str = ".chaoslab-run";

/// Makes `out` ready for a run.
pub fn prepare(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let marker = out.join(OUT_MARKER);
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_none();
        if !empty && !marker.exists() {
            anyhow::bail!(
                "output directory {} is not empty and was not written by chaoslab; choose another --out",
                out.display()
            );
        }
        for entry in std::fs::read_dir(out)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == OUT_MARKER) {
                continue;
            }
            let res =
                if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            res.with_context(|| format!("cannot clear {}", path.display()))?;
        }
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    std::fs::write(out.join(OUT_MARKER), "written by chaoslab; its contents are replaced by the next run\n")
        .with_context(|| format!("cannot write in {}", out.display()))?;
    Ok(())
}
