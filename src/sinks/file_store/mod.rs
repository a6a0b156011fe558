//! `file-store` (`HADOOP`): an HDFS-like file store that keeps NiFi's `PutHDFS` semantics.
//!
//! Every record is one logical file `<dir>/<YYYY-MM-DD>/<uuid>.json` (one directory per day of write
//! time, a fresh flow-file id per record — a time-ordered UUID) under the conflict policy `fail`: an existing file is never
//! overwritten, the record is counted as dropped instead. The I/O fault hooks see each logical file's
//! path, as a fault on a real volume would.
//!
//! Two layouts, one semantics (`layout = …`):
//! - `segments` (the default): logical files packed into append-only segment files with a namespace
//!   ([`segments`], [`namespace`]), as HDFS packs small files into blocks; a record costs one buffered
//!   append instead of creating a file, and memory stays flat however many are stored.
//!   `chaoslab hdfs ls|cat|export` shows and materialises the files ([`read`]).
//! - `files`: the reference layout, one real file per record, each written under a temporary name and
//!   linked into place, so a reader never sees half a record.

pub mod namespace;
pub mod read;
pub mod segments;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use self::segments::SegmentWriter;
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
    /// How logical files are kept on disk.
    #[serde(default)]
    pub layout: Layout,
    /// Segment files roll at this size, in MiB (layout `segments`).
    #[serde(default = "default_segment_mb")]
    pub segment_mb: u64,
}

/// How a file store keeps its logical files on disk.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Append-only segment files and a namespace.
    #[default]
    Segments,
    /// One real file per record (the reference layout).
    Files,
}

fn default_dir() -> PathBuf {
    PathBuf::from("hdfs/nifi")
}

fn default_segment_mb() -> u64 {
    64
}

/// Records put in one batch at most before it is committed.
const BATCH: usize = 1024;

/// Where a file store keeps its files (its handle, for the jobs that read it).
#[derive(Clone, Debug)]
pub struct StoreRoot(pub PathBuf);

impl ComponentKind for FileStoreConfig {
    const KIND: &'static str = "file-store";
    const NAMESPACE: &'static str = "iot";

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.relative_path("dir", &self.dir);
        cx.require((1..=4096).contains(&self.segment_mb), "segment_mb", "must be between 1 and 4096");
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
        let (layout, segment_bytes) = (self.layout, self.segment_mb.saturating_mul(1 << 20));
        cx.add(name, move |ctx| run(ctx, root.clone(), layout, segment_bytes, inbound.clone()))
    }
}

/// Stores one record as a real file (the `files` layout); returns its path. Fails if the target exists.
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

/// A store's writer in either layout.
enum Writer {
    Files(PathBuf),
    Segments(Box<SegmentWriter>),
}

impl Writer {
    /// Puts `day/name.json`; returns its path under the root. In the `files` layout it is stored at once,
    /// in `segments` at the next [`commit`](Writer::commit).
    fn put(&mut self, day: &str, name: &str, bytes: &[u8]) -> std::io::Result<String> {
        match self {
            Writer::Files(root) => {
                let path = store(root, day, name, bytes)?;
                Ok(path.strip_prefix(root).unwrap_or(&path).display().to_string())
            }
            Writer::Segments(w) => w.put(day, name, bytes),
        }
    }

    fn commit(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Files(_) => Ok(()),
            Writer::Segments(w) => w.commit(),
        }
    }
}

/// A record put and waiting for its batch's commit.
struct Put {
    path: String,
    bytes: usize,
}

/// Runs one incarnation of the store: takes what is queued in batches of up to 1 024 records, puts each
/// record, commits the batch, then reports each record stored (or dropped, if the commit failed).
pub async fn run(
    ctx: Ctx,
    root: PathBuf,
    layout: Layout,
    segment_bytes: u64,
    inbound: Arc<Link>,
) -> anyhow::Result<()> {
    let mut writer = match layout {
        Layout::Files => Writer::Files(root.clone()),
        Layout::Segments => Writer::Segments(Box::new(
            SegmentWriter::open(&root, segment_bytes)
                .map_err(|e| anyhow::anyhow!("cannot open the store at {}: {e}", root.display()))?,
        )),
    };
    ctx.health.set_ready(true, "accepting writes");
    let mut rx = inbound.receiver().await;
    let mut batch = Vec::new();
    while let Some(env) = rx.recv_until(&ctx.shutdown).await {
        let mut next = Some(env);
        while let Some(env) = next.take() {
            put(&ctx, &mut writer, &root, &env.payload, &mut batch).await;
            if batch.len() < BATCH {
                next = rx.try_recv();
            }
        }
        match writer.commit() {
            Ok(()) => {
                for p in batch.drain(..) {
                    ctx.metrics.records_out.inc();
                    ctx.trace_record("file.stored", &json!({"path": p.path, "bytes": p.bytes}));
                }
            }
            Err(e) => {
                tracing::error!(component = %ctx.name, "PutHDFS failed for {} records under {}: {e}", batch.len(), root.display());
                for p in batch.drain(..) {
                    ctx.drop_record("io_error", json!({"path": p.path, "error": e.to_string()}));
                }
            }
        }
    }
    Ok(())
}

async fn put(ctx: &Ctx, writer: &mut Writer, root: &Path, payload: &[u8], batch: &mut Vec<Put>) {
    ctx.metrics.records_in.inc();
    let now = ctx.clock.now();
    let day = now.format("%Y-%m-%d").to_string();
    // A time-ordered id: the namespace's index then grows at its end (a random one would touch a random
    // page of it per record).
    let name = ctx.rng.uuid_v7(u64::try_from(now.timestamp_millis()).unwrap_or(0)).to_string();
    let rel = format!("{day}/{name}");
    let put = match ctx.io_write(&rel).await {
        Ok(()) => writer.put(&day, &name, &ctx.hooks.io_data(&rel, payload)),
        Err(e) => Err(e),
    };
    match put {
        Ok(path) => batch.push(Put { path, bytes: payload.len() }),
        Err(e) => {
            let target = root.join(&day).join(format!("{name}.json"));
            tracing::error!(component = %ctx.name, "PutHDFS failed for {}: {e}", target.display());
            let reason = if e.kind() == std::io::ErrorKind::AlreadyExists { "conflict" } else { "io_error" };
            ctx.drop_record(reason, json!({"error": e.to_string()}));
        }
    }
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
