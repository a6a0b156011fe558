//! `ELASTICSEARCH`: an embedded, append-only document index.
//!
//! Each index is a list of JSON documents, kept in memory for the HTTP API and appended, one document per
//! line, to `<out>/index/<name>.jsonl`. Writers reach it through links (FLINK->ELASTICSEARCH, …); the
//! component drains those links, so an index that is down or partitioned loses writes exactly where the
//! real one would. Index names follow Elasticsearch's rules (lower case, no path characters), which also
//! keeps names from the network from escaping the directory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde_json::{Value, json};

use crate::kernel::component::Ctx;
use crate::transport::link::Link;

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

struct IndexData {
    docs: Vec<Arc<Value>>,
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

    /// Appends a document; returns its position in the index.
    pub fn append(&self, index: &str, doc: Value) -> Result<usize, IndexError> {
        validate_index_name(index)?;
        if !doc.is_object() {
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
            let line = format!("{doc}\n");
            file.write_all(line.as_bytes())
                .map_err(|source| IndexError::Io { path: self.path_of(index).unwrap_or_default(), source })?;
        }
        data.docs.push(Arc::new(doc));
        Ok(data.docs.len() - 1)
    }

    /// Documents `from..from+size` of an index (empty when the index does not exist).
    pub fn docs(&self, index: &str, from: usize, size: usize) -> Vec<Arc<Value>> {
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
    pub fn flush(&self) -> std::io::Result<()> {
        for data in self.lock().values_mut() {
            if let Some(f) = data.file.as_mut() {
                f.flush()?;
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
                let doc: Value = match serde_json::from_slice(&env.payload) {
                    Ok(doc) => doc,
                    Err(e) => {
                        tracing::warn!(component = %ctx.name, index = %env.topic, "rejected document: {e}");
                        ctx.drop_record("mapper_parsing_exception", json!({"index": env.topic}));
                        continue;
                    }
                };
                let id = doc.get("id").cloned().unwrap_or(Value::Null);
                match store.append(&env.topic, doc) {
                    Ok(pos) => {
                        ctx.metrics.records_out.inc();
                        ctx.trace("document.written", json!({"index": env.topic, "id": id, "pos": pos}));
                    }
                    Err(e) => {
                        tracing::warn!(component = %ctx.name, "rejected document: {e}");
                        ctx.drop_record("rejected", json!({"index": env.topic, "error": e.to_string()}));
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
            store.append("flink-sensor-data", json!({"id": i})).unwrap();
        }
        assert_eq!(store.count("flink-sensor-data"), 5);
        let page: Vec<i64> =
            store.docs("flink-sensor-data", 1, 2).iter().map(|d| d["id"].as_i64().unwrap()).collect();
        assert_eq!(page, vec![1, 2]);
        assert_eq!(store.list(), vec![IndexInfo { name: "flink-sensor-data".into(), docs: 5 }]);
        store.flush().unwrap();
        let text = std::fs::read_to_string(dir.path().join("index/flink-sensor-data.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn bad_names_and_documents_are_refused() {
        let store = IndexStore::new(None);
        for bad in ["", "../etc", "Upper", "_x", "a/b"] {
            assert!(matches!(store.append(bad, json!({})), Err(IndexError::InvalidName(_))), "{bad}");
        }
        assert!(matches!(store.append("ok", json!([1])), Err(IndexError::NotAnObject(_))));
        assert!(store.list().is_empty());
    }
}
