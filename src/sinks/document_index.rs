//! `document-index` (`ELASTICSEARCH`): an embedded, append-only document index.
//!
//! Each index is a list of JSON documents appended, one document per line, to `<out>/index/<name>.jsonl`.
//! Memory holds the newest documents of each index (at most [`TAIL_BYTES`] of JSON text, kept as validated
//! text: no parsed tree, served as is) and the file offset of every [`STRIDE`]-th document; an older page
//! is read back from the file. So memory stays flat however long a run writes, as Elasticsearch keeps
//! its segments on disk. A store without a directory keeps everything in memory. Writers reach it through
//! links (FLINK->ELASTICSEARCH, …); the component drains those links, so an index that is down or
//! partitioned loses writes exactly where the real one would. Index names follow Elasticsearch's rules
//! (lower case, no path characters), which also keeps names from the network from escaping the directory.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
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

/// Newest documents' JSON text kept in memory per index, at most (with a file behind it).
pub const TAIL_BYTES: usize = 4 << 20;

/// Every `STRIDE`-th document's offset in its file is kept in memory.
pub const STRIDE: usize = 256;

struct IndexData {
    /// Documents in the index.
    count: usize,
    /// The newest documents (all of them without a file).
    tail: VecDeque<Doc>,
    tail_bytes: usize,
    /// File offsets of documents 0, STRIDE, 2·STRIDE, …
    marks: Vec<u64>,
    /// Bytes written to the file: the next document's offset.
    end: u64,
    file: Option<BufWriter<File>>,
}

impl IndexData {
    /// Position of the oldest document in memory.
    fn tail_start(&self) -> usize {
        self.count - self.tail.len()
    }
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
        // One document, one line: a document sent with line breaks is stored compact.
        let doc = if doc.get().contains(['\n', '\r']) {
            let value: serde_json::Value =
                serde_json::from_str(doc.get()).map_err(|_| IndexError::NotAnObject(index.to_string()))?;
            serde_json::value::to_raw_value(&value).map_err(|_| IndexError::NotAnObject(index.to_string()))?
        } else {
            doc
        };
        let mut indices = self.lock();
        if !indices.contains_key(index) {
            let file = match self.path_of(index) {
                Some(path) => Some(open_append(&path)?),
                None => None,
            };
            // An existing file (`chaoslab mine` adding to a finished run's index) is appended to.
            let end = match &file {
                Some(f) => f.get_ref().metadata().map(|m| m.len()).unwrap_or(0),
                None => 0,
            };
            let data =
                IndexData { count: 0, tail: VecDeque::new(), tail_bytes: 0, marks: Vec::new(), end, file };
            indices.insert(index.to_string(), data);
        }
        let Some(data) = indices.get_mut(index) else { return Err(IndexError::InvalidName(index.into())) };
        let len = doc.get().len();
        if let Some(file) = data.file.as_mut() {
            let written = file.write_all(doc.get().as_bytes()).and_then(|()| file.write_all(b"\n"));
            written
                .map_err(|source| IndexError::Io { path: self.path_of(index).unwrap_or_default(), source })?;
            if data.count.is_multiple_of(STRIDE) {
                data.marks.push(data.end);
            }
            data.end += len as u64 + 1;
        }
        data.tail.push_back(Arc::from(doc));
        data.tail_bytes += len;
        data.count += 1;
        if data.file.is_some() {
            while data.tail_bytes > TAIL_BYTES && data.tail.len() > 1 {
                if let Some(old) = data.tail.pop_front() {
                    data.tail_bytes -= old.get().len();
                }
            }
        }
        Ok(data.count - 1)
    }

    /// Documents `from..from+size` of an index (empty when the index does not exist), older ones read back
    /// from its file.
    pub fn docs(&self, index: &str, from: usize, size: usize) -> Vec<Doc> {
        if size == 0 {
            return Vec::new();
        }
        {
            // A page within memory: copy just the page, not the whole tail as a scan would.
            let indices = self.lock();
            let Some(data) = indices.get(index) else { return Vec::new() };
            if let Some(skip) = from.checked_sub(data.tail_start()) {
                return data.tail.range(skip.min(data.tail.len())..).take(size).cloned().collect();
            }
        }
        let mut out = Vec::new();
        self.scan(index, from, &mut |doc| {
            out.push(doc);
            out.len() < size
        });
        out
    }

    /// Calls `f` with the documents of `index` from position `from` on, in order, until it returns
    /// false; false when there is no such index. Documents no longer in memory are read from the file
    /// without holding the store's lock, so writers go on meanwhile.
    pub fn scan(&self, index: &str, from: usize, f: &mut dyn FnMut(Doc) -> bool) -> bool {
        let (tail, tail_start, from_disk) = {
            let mut indices = self.lock();
            let Some(data) = indices.get_mut(index) else { return false };
            let tail_start = data.tail_start();
            let from_disk = if from < tail_start {
                // The lines before the tail are complete on disk once the buffer is flushed.
                if let Some(file) = data.file.as_mut()
                    && let Err(e) = file.flush()
                {
                    tracing::warn!(index, "cannot flush the index file: {e}");
                }
                let mark = from / STRIDE;
                data.marks.get(mark).map(|&offset| (offset, mark * STRIDE))
            } else {
                None
            };
            let skip = from.saturating_sub(tail_start);
            (data.tail.range(skip.min(data.tail.len())..).cloned().collect::<Vec<_>>(), tail_start, from_disk)
        };
        if let Some((offset, first)) = from_disk
            && let Some(path) = self.path_of(index)
        {
            match read_lines(&path, offset, first, from, tail_start, f) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(e) => {
                    tracing::warn!(index, "cannot read {}: {e}", path.display());
                    return true;
                }
            }
        }
        for doc in tail {
            if !f(doc) {
                break;
            }
        }
        true
    }

    /// Number of documents in an index.
    pub fn count(&self, index: &str) -> usize {
        self.lock().get(index).map_or(0, |d| d.count)
    }

    /// All indices, by name.
    pub fn list(&self) -> Vec<IndexInfo> {
        self.lock().iter().map(|(name, d)| IndexInfo { name: name.clone(), docs: d.count }).collect()
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

/// Reads documents `from..until` of the file at `path`, whose document `first` starts at `offset`, into
/// `f`; `Ok(false)` when `f` asked to stop.
fn read_lines(
    path: &Path,
    offset: u64,
    first: usize,
    from: usize,
    until: usize,
    f: &mut dyn FnMut(Doc) -> bool,
) -> std::io::Result<bool> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    for pos in first..until {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("document {pos} is missing"),
            ));
        }
        if pos < from {
            continue;
        }
        let doc = RawValue::from_string(line.trim_end().to_owned()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("document {pos}: {e}"))
        })?;
        if !f(Arc::from(doc)) {
            return Ok(false);
        }
    }
    Ok(true)
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
    fn memory_keeps_the_newest_documents_and_older_pages_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index/big.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A file left by an earlier writer is appended to, and not counted as this store's.
        std::fs::write(&path, "{\"old\":true}\n").unwrap();
        let store = IndexStore::new(Some(dir.path().join("index")));
        let pad = "x".repeat(1000);
        let n = 3 * TAIL_BYTES / 1000 + 7;
        for i in 0..n {
            store.append("big", &json!({"i": i, "pad": pad})).unwrap();
        }
        store.append_json("big", b"{\n  \"i\": \"last\"\n}").unwrap();
        let (tail_len, tail_bytes) = {
            let indices = store.lock();
            let d = &indices["big"];
            (d.tail.len(), d.tail_bytes)
        };
        assert!(
            tail_bytes <= TAIL_BYTES && tail_len < n / 2,
            "{tail_len} documents, {tail_bytes} bytes in memory"
        );
        assert_eq!(store.count("big"), n + 1);
        let id = |d: &Doc| serde_json::from_str::<serde_json::Value>(d.get()).unwrap()["i"].clone();
        // Pages from the file, across the file/memory boundary, and from memory.
        let boundary = n + 1 - tail_len;
        for from in [0, 1, STRIDE - 1, STRIDE, 5 * STRIDE + 3, boundary - 2, boundary, n - 1] {
            let page = store.docs("big", from, 4);
            let want: Vec<serde_json::Value> = (from..(from + 4).min(n))
                .map(|i| json!(i))
                .chain((from + 4 > n).then(|| json!("last")))
                .collect();
            assert_eq!(page.iter().map(id).collect::<Vec<_>>(), want, "from {from}");
        }
        assert!(store.docs("big", n + 1, 4).is_empty());
        let mut seen = 0;
        assert!(store.scan("big", 0, &mut |_| {
            seen += 1;
            true
        }));
        assert_eq!(seen, n + 1);
        assert!(!store.scan("none", 0, &mut |_| true));
        store.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), n + 2, "one line per document, the earlier one kept");
        assert_eq!(text.lines().last(), Some("{\"i\":\"last\"}"), "stored compact");
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
