//! `document-index` (`ELASTICSEARCH`): an embedded, append-only document index.
//!
//! Each index is a list of JSON documents, kept in memory as their validated JSON text (no parsed tree:
//! cheap to keep, served as is) for the HTTP API, and appended, one document per line, to
//! `<out>/index/<name>.jsonl`. Writers reach it through links (FLINK->ELASTICSEARCH, …); the
//! component drains those links, so an index that is down or partitioned loses writes exactly where the
//! real one would. Index names follow Elasticsearch's rules (lower case, no path characters), which also
//! keeps names from the network from escaping the directory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;

use crate::kernel::component::Ctx;
use crate::topology::check::CheckCx;
use crate::topology::component::ComponentKind;
use crate::topology::{BuildCx, Flush};
use crate::transport::link::Link;

/// `kind = "document-index"`.
#[derive(Clone, Debug, Deserialize)]
pub struct DocumentIndexConfig {
    /// Directory under the run's output directory.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
}

fn default_dir() -> PathBuf {
    PathBuf::from("index")
}

impl ComponentKind for DocumentIndexConfig {
    const KIND: &'static str = "document-index";
    const NAMESPACE: &'static str = "iot";

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.relative_path("dir", &self.dir);
    }

    /// Provides its [`IndexStore`] (the API's `/indices`, the mining job) and a flush at the end.
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let store = IndexStore::new(Some(cx.out_path(&self.dir)));
        cx.provide(name, store.clone());
        let flushed = store.clone();
        cx.provide(name, Flush(Arc::new(move || flushed.flush().map_err(anyhow::Error::from))));
        let inbound = cx.inbound(name);
        cx.add(name, move |ctx| run(ctx, store.clone(), inbound.clone()))
    }
}

/// A write the index refused.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Name not allowed.
    #[error(
        "invalid index name {0:?}: lower-case letters, digits, '-', '_' and '.' only, not starting with '-', '_' or '.', at most 255 bytes"
    )]
    InvalidName(String),
    /// The document is not a JSON object.
    #[error("document for index {0:?} is not a JSON object")]
    NotAnObject(String),
    /// The file could not be written.
    #[error("writing index file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// One index's size, for listings.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IndexInfo {
    /// Name.
    pub name: String,
    /// Documents.
    pub docs: usize,
}

/// One stored document: JSON text known to be an object.
pub type Doc = Arc<RawValue>;

struct IndexData {
    docs: Vec<Doc>,
    file: Option<BufWriter<File>>,
}

/// The store behind `ELASTICSEARCH`. Cheap to clone.
#[derive(Clone)]
pub struct IndexStore {
    dir: Option<PathBuf>,
    indices: Arc<Mutex<BTreeMap<String, IndexData>>>,
}

/// Checks an index name against Elasticsearch's rules.
pub fn validate_index_name(name: &str) -> Result<(), IndexError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '_', '.'])
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(IndexError::InvalidName(name.to_string())) }
}

impl IndexStore {
    /// A store writing under `dir` (created on first write), or memory only.
    pub fn new(dir: Option<PathBuf>) -> IndexStore {
        IndexStore { dir, indices: Default::default() }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, IndexData>> {
        self.indices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file of an index.
    pub fn path_of(&self, index: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{index}.jsonl")))
    }

    /// Appends a document given as JSON text; returns its position in the index.
    pub fn append_json(&self, index: &str, json: &[u8]) -> Result<usize, IndexError> {
        let text = std::str::from_utf8(json).map_err(|_| IndexError::NotAnObject(index.to_string()))?;
        let doc: Box<RawValue> =
            serde_json::from_str(text.trim()).map_err(|_| IndexError::NotAnObject(index.to_string()))?;
        self.append_raw(index, doc)
    }

    /// Appends a document; returns its position in the index.
    pub fn append<T: serde::Serialize>(&self, index: &str, doc: &T) -> Result<usize, IndexError> {
        let doc =
            serde_json::value::to_raw_value(doc).map_err(|_| IndexError::NotAnObject(index.to_string()))?;
        self.append_raw(index, doc)
    }

    fn append_raw(&self, index: &str, doc: Box<RawValue>) -> Result<usize, IndexError> {
        validate_index_name(index)?;
        if !doc.get().starts_with('{') {
            return Err(IndexError::NotAnObject(index.to_string()));
        }
        let mut indices = self.lock();
        if !indices.contains_key(index) {
            let file = match self.path_of(index) {
                Some(path) => Some(open_append(&path)?),
                None => None,
            };
            indices.insert(index.to_string(), IndexData { docs: Vec::new(), file });
        }
        let Some(data) = indices.get_mut(index) else { return Err(IndexError::InvalidName(index.into())) };
        if let Some(file) = data.file.as_mut() {
            let written = file.write_all(doc.get().as_bytes()).and_then(|()| file.write_all(b"\n"));
            written
                .map_err(|source| IndexError::Io { path: self.path_of(index).unwrap_or_default(), source })?;
        }
        data.docs.push(Arc::from(doc));
        Ok(data.docs.len() - 1)
    }

    /// Documents `from..from+size` of an index (empty when the index does not exist).
    pub fn docs(&self, index: &str, from: usize, size: usize) -> Vec<Doc> {
        let indices = self.lock();
        indices.get(index).map(|d| d.docs.iter().skip(from).take(size).cloned().collect()).unwrap_or_default()
    }

    /// Number of documents in an index.
    pub fn count(&self, index: &str) -> usize {
        self.lock().get(index).map_or(0, |d| d.docs.len())
    }

    /// All indices, by name.
    pub fn list(&self) -> Vec<IndexInfo> {
        self.lock().iter().map(|(name, d)| IndexInfo { name: name.clone(), docs: d.docs.len() }).collect()
    }

    /// Writes buffered lines to disk.
    pub fn flush(&self) -> Result<(), IndexError> {
        for (name, data) in self.lock().iter_mut() {
            if let Some(f) = data.file.as_mut() {
                f.flush().map_err(|source| IndexError::Io {
                    path: self.path_of(name).unwrap_or_default(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<BufWriter<File>, IndexError> {
    let io = |source| IndexError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    Ok(BufWriter::new(file))
}

/// Trace data of `document.written`.
#[derive(Serialize)]
struct Written<'a> {
    index: &'a str,
    pos: usize,
}

/// The `ELASTICSEARCH` component: drains its inbound links into the store. A link's messages carry the
/// index name as topic and the document as payload.
pub async fn run(ctx: Ctx, store: IndexStore, inbound: Vec<Arc<Link>>) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "accepting writes");
    let mut tasks = tokio::task::JoinSet::new();
    for link in inbound {
        let (ctx, store) = (ctx.clone(), store.clone());
        tasks.spawn(async move {
            let mut rx = link.receiver().await;
            while let Some(env) = rx.recv().await {
                ctx.metrics.records_in.inc();
                if let Err(e) = ctx.io_write(&env.topic).await {
                    tracing::warn!(component = %ctx.name, "write to {} failed: {e}", env.topic);
                    ctx.drop_record("io_error", json!({"index": env.topic, "error": e.to_string()}));
                    continue;
                }
                match store.append_json(&env.topic, &env.payload) {
                    Ok(pos) => {
                        ctx.metrics.records_out.inc();
                        ctx.trace_record("document.written", &Written { index: &env.topic, pos });
                    }
                    Err(e) => {
                        tracing::warn!(component = %ctx.name, "rejected document: {e}");
                        let reason = match e {
                            IndexError::NotAnObject(_) => "mapper_parsing_exception",
                            _ => "rejected",
                        };
                        ctx.drop_record(reason, json!({"index": env.topic, "error": e.to_string()}));
                    }
                }
            }
        });
    }
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            _ = tasks.join_next(), if !tasks.is_empty() => {}
            _ = refresh.tick() => store.flush()?,
        }
    }
    store.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_list_page_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = IndexStore::new(Some(dir.path().join("index")));
        for i in 0..5 {
            store.append("flink-sensor-data", &json!({"id": i})).unwrap();
        }
        store.append_json("flink-sensor-data", b" {\"id\": 5} ").unwrap();
        assert_eq!(store.count("flink-sensor-data"), 6);
        let page: Vec<String> =
            store.docs("flink-sensor-data", 1, 2).iter().map(|d| d.get().to_string()).collect();
        assert_eq!(page, ["{\"id\":1}", "{\"id\":2}"]);
        assert_eq!(store.list(), vec![IndexInfo { name: "flink-sensor-data".into(), docs: 6 }]);
        store.flush().unwrap();
        let text = std::fs::read_to_string(dir.path().join("index/flink-sensor-data.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 6);
        assert_eq!(text.lines().last(), Some("{\"id\": 5}"));
    }

    #[test]
    fn bad_names_and_documents_are_refused() {
        let store = IndexStore::new(None);
        for bad in ["", "../etc", "Upper", "_x", "a/b"] {
            assert!(matches!(store.append(bad, &json!({})), Err(IndexError::InvalidName(_))), "{bad}");
        }
        assert!(matches!(store.append("ok", &json!([1])), Err(IndexError::NotAnObject(_))));
        assert!(matches!(store.append_json("ok", b"{\"a\":"), Err(IndexError::NotAnObject(_))));
        assert!(matches!(store.append_json("ok", b"\xff"), Err(IndexError::NotAnObject(_))));
        assert!(store.list().is_empty());
    }
}
