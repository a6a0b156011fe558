//! On-disk segments: where a partition keeps the records that do not fit its in-memory tail.
//!
//! A segment is one append-only file named after its first offset, as Kafka names
//! `00000000000000000000.log`. Each record is a frame, little-endian: `u32` length of the rest, `i64`
//! timestamp (ms), `i32` key length (-1: no key), the key, the value. Offsets are implied by position.
//! A sparse index in memory (one entry per 4 KiB, like Kafka's `.index`) says where
//! to start reading for an offset; from there the frames are scanned.
//!
//! Writes are positional (`pwrite` at the segment's end), so a failed write leaves nothing that a later
//! write or a read would see: the segment's length only moves once a batch is wholly written.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::log::Stored;

/// Bytes between two entries of the sparse index.
const INDEX_INTERVAL: u64 = 4096;
/// Bytes read at a time when scanning frames.
const READ_CHUNK: usize = 64 * 1024;
/// Frame bytes before the key: length, timestamp, key length.
const HEADER: usize = 4 + 8 + 4;

/// One segment file and what the log needs to know about it without reading it.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of its first record.
    base: u64,
    /// Offset after its last record.
    next: u64,
    path: PathBuf,
    /// Open while the segment takes records; a sealed one is opened per read, so a long log does not
    /// hold a descriptor per segment.
    file: Option<File>,
    /// Bytes of frames written.
    len: u64,
    /// What its records count against `retention.bytes` (as they counted in memory).
    pub(crate) counted: u64,
    /// Largest record timestamp, which time retention compares (Kafka's rule for a segment).
    pub(crate) max_timestamp_ms: i64,
    /// `(offset, file position)` of a frame every [`INDEX_INTERVAL`] bytes, the first frame included.
    index: Vec<(u64, u64)>,
}

impl Segment {
    /// A new, empty segment in `dir` whose first record will be `base`.
    pub(crate) fn create(dir: &Path, base: u64) -> io::Result<Segment> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{base:020}.log"));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        Ok(Segment {
            base,
            next: base,
            path,
            file: Some(file),
            len: 0,
            counted: 0,
            max_timestamp_ms: i64::MIN,
            index: Vec::new(),
        })
    }

    /// Offset of its first record.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Offset after its last record.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Bytes of the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Writes `records` (the offsets from [`Segment::next`] on) at the end, in one write. On an error the
    /// segment is as it was.
    pub(crate) fn append<'a>(&mut self, records: impl Iterator<Item = &'a Stored>) -> io::Result<()> {
        let mut buf = Vec::new();
        let (mut next, mut counted, mut max_ts) = (self.next, 0, self.max_timestamp_ms);
        let mut index = Vec::new();
        let mut last_indexed = self.index.last().map(|&(_, pos)| pos);
        for r in records {
            let pos = self.len + buf.len() as u64;
            if last_indexed.is_none_or(|last| pos - last >= INDEX_INTERVAL) {
                index.push((next, pos));
                last_indexed = Some(pos);
            }
            encode(r, &mut buf)?;
            next += 1;
            counted += r.size();
            max_ts = max_ts.max(r.timestamp_ms);
        }
        let file = self.file.as_ref().ok_or_else(|| io::Error::other("a sealed segment takes no records"))?;
        file.write_all_at(&buf, self.len)?;
        self.len += buf.len() as u64;
        self.next = next;
        self.counted += counted;
        self.max_timestamp_ms = max_ts;
        self.index.extend(index);
        Ok(())
    }

    /// Calls `each` with the offsets and records from `from` on (within this segment), at most `max` of
    /// them.
    pub(crate) fn read(&self, from: u64, max: usize, mut each: impl FnMut(u64, Stored)) -> io::Result<()> {
        if from >= self.next || max == 0 {
            return Ok(());
        }
        let at = self.index.partition_point(|&(offset, _)| offset <= from).saturating_sub(1);
        let (mut offset, mut pos) = self.index.get(at).copied().unwrap_or((self.base, 0));
        let opened;
        let file = match &self.file {
            Some(f) => f,
            None => {
                opened = File::open(&self.path).map_err(|e| self.error(0, e))?;
                &opened
            }
        };
        let mut buf = Vec::new();
        let mut taken = 0;
        while offset < self.next && taken < max {
            let want = READ_CHUNK.min(usize::try_from(self.len - pos).unwrap_or(READ_CHUNK));
            self.fill(file, &mut buf, pos, want)?;
            let mut at = 0;
            while offset < self.next && taken < max {
                let Some(len) = frame_len(&buf[at..]) else { break };
                if buf.len() - at < len {
                    if at > 0 {
                        break; // the next chunk starts with this frame
                    }
                    if pos + len as u64 > self.len {
                        return Err(corrupt(&self.path, offset, "a frame runs past the segment's end"));
                    }
                    self.fill(file, &mut buf, pos, len)?; // a frame larger than a chunk, read whole
                }
                if offset >= from {
                    each(offset, decode(&buf[at..at + len], &self.path, offset)?);
                    taken += 1;
                }
                at += len;
                offset += 1;
            }
            if at == 0 && offset < self.next && taken < max {
                return Err(corrupt(&self.path, offset, "the segment ends inside a frame"));
            }
            pos += at as u64;
        }
        Ok(())
    }

    /// Reads `want` bytes at `pos` into `buf` (replacing what it held).
    fn fill(&self, file: &File, buf: &mut Vec<u8>, pos: u64, want: usize) -> io::Result<()> {
        buf.resize(want, 0);
        file.read_exact_at(buf, pos).map_err(|e| self.error(pos, e))
    }

    /// `e`, naming the file and the byte.
    fn error(&self, pos: u64, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{}: at byte {pos}: {e}", self.path.display()))
    }

    /// Takes no more records: the file is closed, and opened again for each read.
    pub(crate) fn seal(&mut self) {
        self.file = None;
    }

    /// Whether the segment still holds its file open (it takes records).
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Deletes the file (a missing one is no error).
    pub(crate) fn remove(self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.path.display(), "cannot delete a bus log segment: {e}"),
        }
    }
}

/// Length of the whole frame that `bytes` starts with, if its length field is there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let field: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(4 + u32::from_le_bytes(field) as usize)
}

fn encode(r: &Stored, buf: &mut Vec<u8>) -> io::Result<()> {
    let key_len = r.key.as_ref().map_or(0, Bytes::len);
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "a record of 4 GiB or more");
    let rest = u32::try_from(HEADER - 4 + key_len + r.value.len()).map_err(|_| too_big())?;
    buf.extend_from_slice(&rest.to_le_bytes());
    buf.extend_from_slice(&r.timestamp_ms.to_le_bytes());
    match &r.key {
        Some(k) => {
            let len = i32::try_from(k.len()).map_err(|_| too_big())?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(k);
        }
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    buf.extend_from_slice(&r.value);
    Ok(())
}

fn decode(frame: &[u8], path: &Path, offset: u64) -> io::Result<Stored> {
    let bad = |what| corrupt(path, offset, what);
    let int = |range: std::ops::Range<usize>| {
        frame.get(range).ok_or_else(|| bad("a frame shorter than its header"))
    };
    let timestamp_ms = i64::from_le_bytes(int(4..12)?.try_into().map_err(|_| bad("timestamp"))?);
    let key_len = i32::from_le_bytes(int(12..16)?.try_into().map_err(|_| bad("key length"))?);
    let (key, value_at) = match usize::try_from(key_len) {
        Ok(n) => {
            let key = frame.get(HEADER..HEADER + n).ok_or_else(|| bad("a key longer than its frame"))?;
            (Some(Bytes::copy_from_slice(key)), HEADER + n)
        }
        Err(_) => (None, HEADER),
    };
    Ok(Stored { key, value: Bytes::copy_from_slice(&frame[value_at..]), timestamp_ms })
}

fn corrupt(path: &Path, offset: u64, what: &str) -> io::Error {
    let message = format!("{}: offset {offset}: {what}", path.display());
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(i: u64, size: usize) -> Stored {
        Stored {
            key: (!i.is_multiple_of(3)).then(|| Bytes::from(format!("k{i}"))),
            value: Bytes::from(vec![(i % 251) as u8; size]),
            timestamp_ms: i as i64 * 10,
        }
    }

    #[test]
    fn records_read_back_from_any_offset_across_index_entries_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 100).unwrap();
        // Sizes from empty to larger than a read chunk, in several batches.
        let sizes = |i: u64| [0, 7, 300, 5000, READ_CHUNK + 17][(i % 5) as usize];
        let all: Vec<Stored> = (0..60).map(|i| stored(i, sizes(i))).collect();
        seg.append(all[..1].iter()).unwrap();
        seg.append(all[1..40].iter()).unwrap();
        seg.append(all[40..].iter()).unwrap();
        assert_eq!((seg.base(), seg.next()), (100, 160));
        assert!(seg.index.len() > 10, "a sparse index with several entries: {}", seg.index.len());
        assert_eq!(seg.counted, all.iter().map(Stored::size).sum::<u64>());
        assert_eq!(seg.max_timestamp_ms, 590);
        assert!(dir.path().join("00000000000000000100.log").exists());
        for from in [100, 101, 117, 133, 158, 159] {
            let mut got = Vec::new();
            seg.read(from, 25, |o, r| got.push((o, r))).unwrap();
            let want: Vec<u64> = (from..160).take(25).collect();
            assert_eq!(got.iter().map(|(o, _)| *o).collect::<Vec<_>>(), want, "from {from}");
            for (o, r) in got {
                let w = &all[(o - 100) as usize];
                assert_eq!((&r.key, &r.value, r.timestamp_ms), (&w.key, &w.value, w.timestamp_ms));
            }
        }
        let mut none = 0;
        seg.read(160, 5, |_, _| none += 1).unwrap();
        seg.read(120, 0, |_, _| none += 1).unwrap();
        assert_eq!(none, 0);
        seg.remove();
        assert!(!dir.path().join("00000000000000000100.log").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_the_file_and_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0).unwrap();
        let all: Vec<Stored> = (0..4).map(|i| stored(i, 40)).collect();
        seg.append(all.iter()).unwrap();
        // Someone cuts the file short behind the log's back.
        std::fs::OpenOptions::new().write(true).open(&seg.path).unwrap().set_len(seg.len - 10).unwrap();
        let mut got = 0;
        let e = seg.read(0, 10, |_, _| got += 1).unwrap_err();
        assert!(e.to_string().contains("00000000000000000000.log"), "{e}");
        assert!(got <= 3, "only whole records were handed out: {got}");
    }
}
