//! The segment layout: logical files packed into append-only segment files, as HDFS packs small files
//! into blocks.
//!
//! `<root>/<day>/blk_<n>.seg` starts with the line `chaoslab-segment 1` and holds frames:
//!
//! ```text
//! <name> <length> <crc32 in hex>\n<length bytes of payload>\n
//! ```
//!
//! A frame is self-describing, so a segment is readable without the namespace (a crashed run's store, an
//! export); the namespace ([`super::namespace`]) says where each name is, for the no-overwrite check and
//! for `chaoslab hdfs cat`. A writer never appends to a segment an earlier writer left: each opening of
//! the store starts a new one, so a segment is complete once its writer is gone. A batch reaches the
//! segment and the namespace together ([`SegmentWriter::commit`]); a process killed between the two leaves
//! frames the namespace does not list, which readers still see.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use super::namespace::{Entry, Namespace};

/// The first line of every segment.
pub const MAGIC: &[u8] = b"chaoslab-segment 1\n";

/// Longest header line a reader accepts (a name, two numbers, two spaces).
const MAX_HEADER: usize = 512;

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("blk_{n:06}.seg")
}

/// Whether `file_name` is a segment's.
pub fn is_segment(file_name: &str) -> bool {
    file_name.starts_with("blk_") && file_name.ends_with(".seg")
}

struct Open {
    day: String,
    number: u64,
    file: File,
    len: u64,
}

/// The store's one writer in the segment layout.
pub struct SegmentWriter {
    root: PathBuf,
    namespace: Namespace,
    segment_bytes: u64,
    last_segment: u64,
    open: Option<Open>,
    buf: Vec<u8>,
    pending: Vec<Entry>,
    pending_paths: HashSet<(String, String)>,
    broken: Option<String>,
}

impl SegmentWriter {
    /// Opens the store at `root` (creating it), rolling segments at `segment_bytes`.
    pub fn open(root: &Path, segment_bytes: u64) -> io::Result<SegmentWriter> {
        std::fs::create_dir_all(root)?;
        let namespace = Namespace::open(root, true)?;
        // Segments a killed writer left without namespace entries still hold a number: skip past them.
        let mut last_segment = namespace.last_segment()?;
        for day in std::fs::read_dir(root)? {
            let day = day?;
            if !day.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(day.path())? {
                let name = f?.file_name().to_string_lossy().into_owned();
                if let Some(n) =
                    is_segment(&name).then(|| name[4..name.len() - 4].parse::<u64>().ok()).flatten()
                {
                    last_segment = last_segment.max(n);
                }
            }
        }
        Ok(SegmentWriter {
            root: root.to_path_buf(),
            namespace,
            segment_bytes: segment_bytes.max(1),
            last_segment,
            open: None,
            buf: Vec::new(),
            pending: Vec::new(),
            pending_paths: HashSet::new(),
            broken: None,
        })
    }

    /// Adds `day/name.json` to the batch; fails with `AlreadyExists` if that path exists. Nothing is
    /// stored until [`commit`](Self::commit).
    pub fn put(&mut self, day: &str, name: &str, bytes: &[u8]) -> io::Result<String> {
        let file = format!("{name}.json");
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b == b'/' || b == b'\\') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad file name {name:?}")));
        }
        let key = (day.to_owned(), file.clone());
        if self.pending_paths.contains(&key) || self.namespace.exists(day, &file)? {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{day}/{file} exists")));
        }
        let fits = |o: &Open| o.day == day && o.len + (self.buf.len() as u64) < self.segment_bytes;
        if !self.open.as_ref().is_some_and(fits) {
            self.flush_buf()?;
            self.open = Some(self.new_segment(day)?);
        }
        let Some((number, base)) = self.open.as_ref().map(|o| (o.number, o.len)) else {
            return Err(io::Error::other("no open segment"));
        };
        let header = format!("{file} {} {:08x}\n", bytes.len(), crc32fast::hash(bytes));
        let offset = base + self.buf.len() as u64 + header.len() as u64;
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(bytes);
        self.buf.push(b'\n');
        self.pending.push(Entry {
            day: day.to_owned(),
            name: file.clone(),
            segment: number,
            offset,
            len: bytes.len() as u64,
        });
        self.pending_paths.insert(key);
        Ok(format!("{day}/{file}"))
    }

    /// Records put since the last commit and not yet stored.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes the batch to its segment and records it in the namespace. On an error nothing of the batch
    /// counts as stored, and the next batch starts a new segment.
    pub fn commit(&mut self) -> io::Result<()> {
        let result = match self.broken.take() {
            Some(e) => Err(io::Error::other(format!("an earlier write of this batch failed: {e}"))),
            None => self.flush_buf().and_then(|()| self.namespace.insert(&self.pending)),
        };
        self.pending.clear();
        self.pending_paths.clear();
        if result.is_err() {
            self.open = None;
            self.buf.clear();
        }
        result
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(open) = self.open.as_mut() else {
            return Err(io::Error::other("no open segment"));
        };
        let written = open.file.write_all(&self.buf);
        open.len += self.buf.len() as u64;
        self.buf.clear();
        if let Err(e) = &written {
            // The segment's tail is unknown now: the batch fails at its commit, and the next starts afresh.
            self.open = None;
            self.broken = Some(e.to_string());
        }
        written
    }

    fn new_segment(&mut self, day: &str) -> io::Result<Open> {
        let dir = self.root.join(day);
        std::fs::create_dir_all(&dir)?;
        self.last_segment += 1;
        let number = self.last_segment;
        let mut file =
            OpenOptions::new().append(true).create_new(true).open(dir.join(segment_name(number)))?;
        file.write_all(MAGIC)?;
        Ok(Open { day: day.to_owned(), number, file, len: MAGIC.len() as u64 })
    }
}

/// One logical file read from a segment.
pub struct Frame {
    /// Its name in the day directory.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why a segment could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not a segment.
    #[error("not a segment (no `chaoslab-segment 1` line)")]
    NotSegment,
    /// A frame cut short: a writer died while writing it.
    #[error("torn frame at byte {0} (a writer stopped mid-write)")]
    Torn(u64),
    /// A header or payload that does not check out.
    #[error("bad frame at byte {offset}: {problem}")]
    Bad {
        /// Where the frame starts.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads a segment's frames in order.
pub struct Frames<R> {
    reader: R,
    offset: u64,
    header: Vec<u8>,
    done: bool,
}

impl Frames<io::BufReader<File>> {
    /// Opens the segment at `path`.
    pub fn open(path: &Path) -> Result<Self, FrameError> {
        Frames::new(io::BufReader::with_capacity(64 * 1024, File::open(path)?))
    }
}

impl<R: BufRead> Frames<R> {
    /// Reads frames from `reader`, which starts at the segment's first byte.
    pub fn new(mut reader: R) -> Result<Self, FrameError> {
        let mut magic = vec![0; MAGIC.len()];
        match reader.read_exact(&mut magic) {
            Ok(()) if magic == MAGIC => {}
            Ok(()) => return Err(FrameError::NotSegment),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::NotSegment),
            Err(e) => return Err(e.into()),
        }
        Ok(Frames { reader, offset: MAGIC.len() as u64, header: Vec::new(), done: false })
    }

    /// The next frame, `None` at the end, or why the rest cannot be read (after which it yields `None`).
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        if self.done {
            return None;
        }
        let result = self.read_frame();
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        result
    }

    fn read_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        let start = self.offset;
        let bad = |problem: String| Some(Err(FrameError::Bad { offset: start, problem }));
        self.header.clear();
        let read = (&mut self.reader).take(MAX_HEADER as u64).read_until(b'\n', &mut self.header);
        match read {
            Ok(0) => return None,
            Ok(_) if self.header.last() != Some(&b'\n') => {
                return if self.header.len() >= MAX_HEADER {
                    bad("header line too long".into())
                } else {
                    Some(Err(FrameError::Torn(start)))
                };
            }
            Ok(_) => {}
            Err(e) => return Some(Err(e.into())),
        }
        let Ok(line) = std::str::from_utf8(&self.header[..self.header.len() - 1]) else {
            return bad("header is not UTF-8".into());
        };
        let mut parts = line.split(' ');
        let (Some(name), Some(len), Some(crc), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return bad(format!("header {line:?} is not `<name> <length> <crc32>`"));
        };
        let (Ok(len), Ok(crc)) = (len.parse::<u64>(), u32::from_str_radix(crc, 16)) else {
            return bad(format!("header {line:?} has a bad length or checksum"));
        };
        let name = name.to_owned();
        // Sized once from the header (a corrupt length cannot make it allocate more than 1 MiB up front).
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(usize::MAX).min(1 << 20) + 1);
        match (&mut self.reader).take(len.saturating_add(1)).read_to_end(&mut bytes) {
            Ok(n) if (n as u64) < len.saturating_add(1) => return Some(Err(FrameError::Torn(start))),
            Ok(_) => {}
            Err(e) => return Some(Err(e.into())),
        }
        if bytes.pop() != Some(b'\n') {
            return bad("payload not followed by a newline".into());
        }
        if crc32fast::hash(&bytes) != crc {
            return bad(format!("checksum mismatch for {name}"));
        }
        self.offset += self.header.len() as u64 + len + 1;
        Some(Ok(Frame { name, bytes }))
    }
}

/// Reads the payload of `entry` from its segment under `root`, checking its length.
pub fn read_entry(root: &Path, entry: &Entry) -> io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(root.join(&entry.day).join(segment_name(entry.segment)))?;
    f.seek(SeekFrom::Start(entry.offset))?;
    let mut bytes = Vec::new();
    f.take(entry.len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != entry.len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment shorter than its namespace entry"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(path: &Path) -> (Vec<(String, Vec<u8>)>, Option<String>) {
        let mut r = Frames::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(f) = r.next_frame() {
            match f {
                Ok(f) => out.push((f.name, f.bytes)),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[test]
    fn writes_frames_a_reader_and_the_namespace_agree_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::open(dir.path(), 1 << 20).unwrap();
        let payloads: [&[u8]; 3] = [b"{\"a\":1}", b"line\nbreaks and \0 zeros", b""];
        for (i, p) in payloads.iter().enumerate() {
            assert_eq!(w.put("2020-02-21", &format!("n{i}"), p).unwrap(), format!("2020-02-21/n{i}.json"));
        }
        assert_eq!(w.pending(), 3);
        assert!(
            frames(&dir.path().join("2020-02-21/blk_000001.seg")).0.is_empty(),
            "nothing before the commit"
        );
        w.commit().unwrap();
        let (read, problem) = frames(&dir.path().join("2020-02-21/blk_000001.seg"));
        assert_eq!(problem, None);
        let want: Vec<(String, Vec<u8>)> =
            payloads.iter().enumerate().map(|(i, p)| (format!("n{i}.json"), p.to_vec())).collect();
        assert_eq!(read, want);
        let ns = Namespace::open(dir.path(), false).unwrap();
        for (i, p) in payloads.iter().enumerate() {
            let e = ns.lookup("2020-02-21", &format!("n{i}.json")).unwrap().unwrap();
            assert_eq!(read_entry(dir.path(), &e).unwrap(), *p);
        }
    }

    #[test]
    fn never_overwrites_within_a_batch_or_across_writers() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::open(dir.path(), 1 << 20).unwrap();
        w.put("2020-02-21", "a", b"1").unwrap();
        let err = w.put("2020-02-21", "a", b"2").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        w.put("2020-02-22", "a", b"3").unwrap();
        w.commit().unwrap();
        drop(w);
        let mut w = SegmentWriter::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(w.put("2020-02-21", "a", b"4").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(w.put("2020-02-21", "bad name", b"4").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        w.put("2020-02-21", "b", b"5").unwrap();
        w.commit().unwrap();
        // The second writer started a segment of its own, numbered after the first writer's.
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("2020-02-21"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["blk_000001.seg", "blk_000003.seg"]);
        assert_eq!(
            frames(&dir.path().join("2020-02-21/blk_000001.seg")).0,
            [("a.json".into(), b"1".to_vec())]
        );
    }

    #[test]
    fn rolls_segments_at_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::open(dir.path(), 100).unwrap();
        for i in 0..10 {
            w.put("2020-02-21", &format!("r{i}"), &[b'x'; 40]).unwrap();
        }
        w.commit().unwrap();
        let mut total = 0;
        for e in std::fs::read_dir(dir.path().join("2020-02-21")).unwrap() {
            let path = e.unwrap().path();
            let (read, problem) = frames(&path);
            assert_eq!(problem, None);
            assert!(std::fs::metadata(&path).unwrap().len() < 100 + 60, "{}", path.display());
            total += read.len();
        }
        assert_eq!(total, 10);
    }

    #[test]
    fn readers_report_torn_and_corrupt_frames_and_keep_what_precedes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::open(dir.path(), 1 << 20).unwrap();
        w.put("d", "a", b"first").unwrap();
        w.put("d", "b", b"second").unwrap();
        w.commit().unwrap();
        let path = dir.path().join("d/blk_000001.seg");
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        let (read, problem) = frames(&path);
        assert_eq!(read.len(), 1);
        assert!(problem.unwrap().starts_with("torn frame at byte"));
        let mut flipped = whole.clone();
        let at = flipped.len() - 3;
        flipped[at] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let (read, problem) = frames(&path);
        assert_eq!(read.len(), 1);
        assert!(problem.unwrap().contains("checksum mismatch for b.json"));
        std::fs::write(&path, b"{\"json\": true}").unwrap();
        assert!(matches!(Frames::open(&path), Err(FrameError::NotSegment)));
    }
}
