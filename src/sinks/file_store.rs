//! `file-store` (`HADOOP`): an HDFS-like file store, written the way NiFi's `PutHDFS` writes.
//!
//! One file per record, `<dir>/<YYYY-MM-DD>/<uuid>.json` (one directory per day of write time, a fresh
//! flow-file id per record), with the conflict policy `fail`: an existing file is never overwritten,
//! the record is counted as dropped instead. Each file is written under a temporary name and renamed, so
//! a reader (the `SPARK` job) never sees half a record.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use crate::kernel::component::Ctx;
use crate::topology::BuildCx;
use crate::topology::check::CheckCx;
use crate::topology::component::ComponentKind;
use crate::transport::link::Link;

/// `kind = "file-store"`.
#[derive(Clone, Debug, Deserialize)]
pub struct FileStoreConfig {
    /// Directory under the run's output directory.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
}

fn default_dir() -> PathBuf {
    PathBuf::from("hdfs/nifi")
}

/// Where a file store keeps its files (its handle, for the jobs that read it).
#[derive(Clone, Debug)]
pub struct StoreRoot(pub PathBuf);

impl ComponentKind for FileStoreConfig {
    const KIND: &'static str = "file-store";
    const NAMESPACE: &'static str = "iot";

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.relative_path("dir", &self.dir);
        let writers = cx.inbound(cx.name());
        match writers.len() {
            1 => {}
            0 => cx.error("", "no component writes to it"),
            _ => {
                cx.error("", format!("more than one writer ({}); a file store takes one", writers.join(", ")))
            }
        }
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let root = cx.out_path(&self.dir);
        cx.provide(name, StoreRoot(root.clone()));
        let inbound =
            cx.inbound(name).into_iter().next().ok_or_else(|| anyhow::anyhow!("{name} has no writer"))?;
        cx.add(name, move |ctx| run(ctx, root.clone(), inbound.clone()))
    }
}

/// Stores one record; returns its path. Fails if the target exists.
pub fn store(root: &Path, day: &str, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = root.join(day);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", path.display()),
        ));
    }
    let tmp = dir.join(format!(".{name}.json.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    // A hard link fails if the target appeared meanwhile, so the no-overwrite rule holds without races.
    let linked = std::fs::hard_link(&tmp, &path);
    std::fs::remove_file(&tmp)?;
    linked?;
    Ok(path)
}

/// Runs one incarnation of the store.
pub async fn run(ctx: Ctx, root: PathBuf, inbound: Arc<Link>) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "accepting writes");
    let mut rx = inbound.receiver().await;
    while let Some(env) = rx.recv_until(&ctx.shutdown).await {
        ctx.metrics.records_in.inc();
        let day = ctx.clock.now().format("%Y-%m-%d").to_string();
        let name = ctx.rng.uuid().to_string();
        let rel = format!("{day}/{name}");
        let written = match ctx.io_write(&rel).await {
            Ok(()) => store(&root, &day, &name, &ctx.hooks.io_data(&rel, &env.payload)),
            Err(e) => Err(e),
        };
        match written {
            Ok(path) => {
                ctx.metrics.records_out.inc();
                let rel = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
                ctx.trace_record("file.stored", &json!({"path": rel, "bytes": env.payload.len()}));
            }
            Err(e) => {
                let target = root.join(&day).join(format!("{name}.json"));
                tracing::error!(component = %ctx.name, "PutHDFS failed for {}: {e}", target.display());
                let reason =
                    if e.kind() == std::io::ErrorKind::AlreadyExists { "conflict" } else { "io_error" };
                ctx.drop_record(reason, json!({"error": e.to_string()}));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_per_day_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = store(dir.path(), "2020-02-21", "a", b"{}").unwrap();
        assert_eq!(p, dir.path().join("2020-02-21/a.json"));
        let err = store(dir.path(), "2020-02-21", "a", b"{\"x\":1}").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("2020-02-21"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
