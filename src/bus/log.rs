//! One partition's log: an append-only sequence of records addressed by offset.
//!
//! Offsets start at 0 and never repeat. The *log start offset* is the first offset still stored; the *high
//! watermark* is the offset the next record will get (replicas catch up instantly in this bus, so the log
//! end and the high watermark coincide). Retention deletes records from the head only, as Kafka deletes old
//! segments, so the stored offsets always form the range `log_start..high_watermark` — by age
//! (`retention.ms`, `PartitionLog::delete_older_than`) and by size (`retention.bytes`, on append).
//!
//! The newest records live in memory. With a [`SpillConfig`], a partition keeps at most
//! [`SpillConfig::memory_bytes`] there and writes the older ones to [`segment`](super::segment) files, so
//! the bus's memory stays bounded whatever its retention; reads below the tail come from the files.
//! Retention then deletes whole segments, as Kafka does (by size while the log is over its limit, by age
//! once a segment's newest record is older than the cutoff), and single records only in memory.

use std::collections::VecDeque;
use std::path::PathBuf;

use bytes::Bytes;
use tracing::warn;

use super::segment::Segment;

/// A record as a consumer (or `Admin::read`) sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Key given by the producer.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Bytes,
    /// Create time given by the producer, in milliseconds since the epoch (retention compares it).
    pub timestamp_ms: i64,
}

/// Where and when partitions move records from memory to disk (Kafka's `log.dirs` and
/// `log.segment.bytes`, and how much of each log stays in memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpillConfig {
    /// Directory of the logs: partition `p` of topic `t` writes `<dir>/<t>-<p>/<first offset>.log`.
    pub dir: PathBuf,
    /// Most bytes of records a partition keeps in memory; past it, the older half goes to disk.
    pub memory_bytes: u64,
    /// A segment file takes records until it holds this many bytes, then the next one starts.
    pub segment_bytes: u64,
}

/// What the log keeps per record; the offset is implied by the position.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Bytes,
    pub(crate) timestamp_ms: i64,
}

/// Bookkeeping counted per stored record besides its key and value (offset, timestamp, buffers).
const RECORD_OVERHEAD: u64 = 64;

impl Stored {
    /// What the record counts against `retention.bytes`.
    pub(crate) fn size(&self) -> u64 {
        (self.key.as_ref().map_or(0, Bytes::len) + self.value.len()) as u64 + RECORD_OVERHEAD
    }
}

/// Where one partition spills, and whether it still can.
#[derive(Debug)]
struct Spill {
    dir: PathBuf,
    memory_bytes: u64,
    segment_bytes: u64,
    /// A write failed (disk full, permissions): records stay in memory from then on, none is lost.
    failed: bool,
}

/// The records of one partition, shared by all its replicas.
#[derive(Debug, Default)]
pub(crate) struct PartitionLog {
    /// Records on disk, oldest first; the last one ends where the memory tail starts.
    segments: VecDeque<Segment>,
    /// Offset of the first record in memory.
    tail_start: u64,
    /// The newest records.
    records: VecDeque<Stored>,
    /// Bytes of the records in memory ([`Stored::size`]).
    tail_bytes: u64,
    /// Bytes of all stored records, on disk and in memory (what `retention.bytes` compares).
    bytes: u64,
    spill: Option<Spill>,
}

impl PartitionLog {
    /// An empty log; with `spill`, partition `partition` of `topic` spills to its directory under it.
    pub(crate) fn new(spill: Option<&SpillConfig>, topic: &str, partition: u32) -> Self {
        let spill = spill.map(|s| Spill {
            dir: s.dir.join(format!("{topic}-{partition}")),
            memory_bytes: s.memory_bytes,
            segment_bytes: s.segment_bytes.max(1),
            failed: false,
        });
        PartitionLog { spill, ..PartitionLog::default() }
    }

    /// First offset still stored (equal to the high watermark when the log is empty).
    pub(crate) fn log_start(&self) -> u64 {
        self.segments.front().map_or(self.tail_start, Segment::base)
    }

    /// Offset the next appended record gets.
    pub(crate) fn high_watermark(&self) -> u64 {
        self.tail_start + self.records.len() as u64
    }

    /// Bytes of records held in memory.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.tail_bytes
    }

    /// Bytes of segment files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::len).sum()
    }

    /// Appends a record and returns its offset; moves the older records to disk if the memory tail is
    /// full; then, while the log holds more than `max_bytes`, deletes from the head (the newest record
    /// always stays).
    pub(crate) fn append(
        &mut self,
        key: Option<Bytes>,
        value: Bytes,
        timestamp_ms: i64,
        max_bytes: Option<u64>,
    ) -> u64 {
        let stored = Stored { key, value, timestamp_ms };
        let size = stored.size();
        self.bytes += size;
        self.tail_bytes += size;
        self.records.push_back(stored);
        let offset = self.high_watermark() - 1;
        self.spill();
        if let Some(max) = max_bytes {
            while self.bytes > max && (!self.segments.is_empty() || self.records.len() > 1) {
                self.pop_head();
            }
        }
        offset
    }

    /// Writes the oldest records of an over-full memory tail to segments until half of it is left (the
    /// newest record stays in memory).
    fn spill(&mut self) {
        let Some(spill) = &mut self.spill else { return };
        if spill.failed || self.tail_bytes <= spill.memory_bytes {
            return;
        }
        let target = spill.memory_bytes / 2;
        while self.tail_bytes > target && self.records.len() > 1 {
            if self.segments.back().is_none_or(|s| s.len() >= spill.segment_bytes) {
                if let Some(full) = self.segments.back_mut() {
                    full.seal();
                }
                match Segment::create(&spill.dir, self.tail_start) {
                    Ok(s) => self.segments.push_back(s),
                    Err(e) => return spill_failed(spill, e),
                }
            }
            let Some(active) = self.segments.back_mut() else { return };
            // Records for this segment: up to its size, and no further than the target allows.
            let (mut n, mut moved, mut room) = (0, 0, spill.segment_bytes.saturating_sub(active.len()));
            for r in self.records.iter().take(self.records.len() - 1) {
                if self.tail_bytes - moved <= target || (n > 0 && room == 0) {
                    break;
                }
                n += 1;
                moved += r.size();
                room = room.saturating_sub(r.size());
            }
            if let Err(e) = active.append(self.records.iter().take(n)) {
                return spill_failed(spill, e);
            }
            self.records.drain(..n);
            self.tail_start += n as u64;
            self.tail_bytes -= moved;
        }
    }

    /// Deletes the oldest segment, or the oldest record in memory when no segment is left.
    fn pop_head(&mut self) {
        if let Some(segment) = self.segments.pop_front() {
            self.bytes -= segment.counted;
            segment.remove();
        } else if let Some(r) = self.records.pop_front() {
            let size = r.size();
            self.bytes -= size;
            self.tail_bytes -= size;
            self.tail_start += 1;
        }
    }

    /// Bytes held (what `retention.bytes` compares).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Up to `max` records from offset `from` on; empty if `from` is outside the stored range. A segment
    /// that cannot be read ends the batch there (logged), so a reader never skips a record.
    pub(crate) fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        if from < self.log_start() {
            return out;
        }
        let record = |offset, r: Stored| ConsumerRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            key: r.key,
            value: r.value,
            timestamp_ms: r.timestamp_ms,
        };
        if from < self.tail_start {
            let first = self.segments.partition_point(|s| s.next() <= from);
            for s in self.segments.range(first..) {
                let wanted = max - out.len();
                if let Err(e) = s.read(from, wanted, |offset, r| out.push(record(offset, r))) {
                    warn!(topic, partition, "cannot read the bus log: {e}");
                    return out;
                }
                if out.len() >= max {
                    return out;
                }
            }
        }
        let skip = from.max(self.tail_start) - self.tail_start;
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let tail = self.records.iter().skip(skip).take(max - out.len());
        out.extend((from.max(self.tail_start)..).zip(tail).map(|(offset, r)| record(offset, r.clone())));
        out
    }

    /// Deletes records from the head while they are older than `cutoff_ms`: whole segments whose newest
    /// record is, then single records in memory, stopping at the first newer one (a younger record protects
    /// everything behind it, as a segment does). Returns how many went.
    pub(crate) fn delete_older_than(&mut self, cutoff_ms: i64) -> u64 {
        let before = self.log_start();
        while self.segments.front().is_some_and(|s| s.max_timestamp_ms < cutoff_ms) {
            self.pop_head();
        }
        if self.segments.is_empty() {
            while self.records.front().is_some_and(|r| r.timestamp_ms < cutoff_ms) {
                self.pop_head();
            }
        }
        self.log_start() - before
    }

    /// Deletes the segment files (the topic is going).
    pub(crate) fn remove_files(&mut self) {
        for segment in self.segments.drain(..) {
            segment.remove();
        }
        if let Some(spill) = &self.spill {
            // Only an empty directory goes; anything else in it is not the log's to delete.
            let _ = std::fs::remove_dir(&spill.dir);
        }
    }
}

fn spill_failed(spill: &mut Spill, e: std::io::Error) {
    warn!(dir = %spill.dir.display(), "cannot write the bus log to disk, keeping it in memory: {e}");
    spill.failed = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(timestamps: &[i64]) -> PartitionLog {
        let mut log = PartitionLog::default();
        for (i, ts) in timestamps.iter().enumerate() {
            assert_eq!(log.append(None, Bytes::from(format!("v{i}")), *ts, None), i as u64);
        }
        log
    }

    #[test]
    fn retention_deletes_from_the_head_only() {
        // The record at offset 2 is old but sits behind a younger one: it stays, like a segment would.
        let mut log = log_with(&[10, 20, 50, 15, 60]);
        assert_eq!(log.delete_older_than(30), 2);
        assert_eq!((log.log_start(), log.high_watermark()), (2, 5));
        assert!(log.read("t", 0, 1, 10).is_empty(), "offset 1 is gone");
        let read = log.read("t", 0, 2, 10);
        assert_eq!(
            read.iter().map(|r| (r.offset, r.timestamp_ms)).collect::<Vec<_>>(),
            [(2, 50), (3, 15), (4, 60)]
        );
        assert_eq!(read[0].value, Bytes::from("v2"));
        assert_eq!(log.delete_older_than(100), 3);
        assert_eq!((log.log_start(), log.high_watermark()), (5, 5));
        assert_eq!(log.append(None, Bytes::new(), 0, None), 5, "offsets never restart");
    }

    #[test]
    fn size_retention_deletes_from_the_head_on_append_and_keeps_the_newest() {
        let mut log = PartitionLog::default();
        let value = Bytes::from(vec![b'x'; 36]);
        // Each record counts 36 + 64 = 100 bytes.
        for i in 0..5 {
            assert_eq!(log.append(None, value.clone(), i, Some(300)), i as u64);
        }
        assert_eq!((log.log_start(), log.high_watermark(), log.bytes()), (2, 5, 300));
        assert_eq!(log.read("t", 0, 0, 10), vec![], "offset 0 is gone");
        assert_eq!(log.read("t", 0, 2, 10).len(), 3);
        let big = Bytes::from(vec![b'y'; 1000]);
        assert_eq!(log.append(Some(Bytes::from_static(b"k")), big, 9, Some(300)), 5);
        assert_eq!((log.log_start(), log.bytes()), (5, 1065), "a record larger than the limit still stays");
        assert_eq!(log.delete_older_than(10), 1);
        assert_eq!((log.log_start(), log.high_watermark(), log.bytes()), (6, 6, 0));
    }

    fn spilling(dir: &std::path::Path, memory_bytes: u64, segment_bytes: u64) -> PartitionLog {
        let config = SpillConfig { dir: dir.to_owned(), memory_bytes, segment_bytes };
        PartitionLog::new(Some(&config), "poke-orders", 2)
    }

    fn value(i: u64, len: usize) -> Bytes {
        Bytes::from((0..len).map(|j| (i as usize + j) as u8).collect::<Vec<u8>>())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever the sizes, a spilling log answers every read as a log wholly in memory does, and keeps
        /// at most its memory limit (plus the newest record) in memory.
        #[test]
        fn a_spilling_log_reads_as_one_in_memory(
            sizes in proptest::collection::vec(0usize..3000, 1..400),
            memory in 200u64..6000,
            segment in 300u64..20_000,
            reads in proptest::collection::vec((0u64..400, 1usize..90), 1..12),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut disk = spilling(dir.path(), memory, segment);
            let mut mem = PartitionLog::default();
            for (i, &len) in sizes.iter().enumerate() {
                let key = (!i.is_multiple_of(4)).then(|| Bytes::from(format!("user-{i}")));
                let (a, b) = (
                    disk.append(key.clone(), value(i as u64, len), i as i64, None),
                    mem.append(key, value(i as u64, len), i as i64, None),
                );
                proptest::prop_assert_eq!(a, b);
                let newest = disk.records.back().map_or(0, Stored::size);
                proptest::prop_assert!(disk.memory_bytes() <= memory.max(newest));
            }
            proptest::prop_assert_eq!(disk.bytes(), mem.bytes());
            proptest::prop_assert_eq!((disk.log_start(), disk.high_watermark()), (0, sizes.len() as u64));
            for (from, max) in reads {
                proptest::prop_assert_eq!(disk.read("t", 1, from, max), mem.read("t", 1, from, max));
            }
            let all = disk.read("t", 1, 0, usize::MAX);
            proptest::prop_assert_eq!(all.len(), sizes.len());
        }
    }

    #[test]
    fn spilled_logs_keep_memory_bounded_and_name_their_files_after_the_first_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = spilling(dir.path(), 10_000, 50_000);
        for i in 0..2_000 {
            log.append(None, value(i, 436), i as i64, None); // 500 bytes each with the overhead
        }
        assert!(log.memory_bytes() <= 10_000, "{}", log.memory_bytes());
        // A frame is 16 bytes of header and the value.
        assert_eq!(log.disk_bytes(), log.tail_start * (16 + 436));
        assert!(log.tail_start > 1_900, "{}", log.tail_start);
        let part = dir.path().join("poke-orders-2");
        let mut files: Vec<String> = std::fs::read_dir(&part)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files.len(), log.segments.len());
        assert_eq!(files[0], "00000000000000000000.log");
        assert_eq!(files[1], format!("{:020}.log", log.segments[1].base()));
        assert!(log.segments.iter().all(|s| s.len() <= 50_000 + 500));
        let open: Vec<bool> = log.segments.iter().map(Segment::is_open).collect();
        assert_eq!(open.iter().filter(|o| **o).count(), 1, "only the active segment holds a descriptor");
        assert_eq!(open.last(), Some(&true));
        // A sealed segment reads back as well as the active one.
        assert_eq!(log.read("t", 0, 0, 3).iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(log.read("t", 0, 0, 3)[1].value, value(1, 436));
        log.remove_files();
        assert!(!part.exists(), "the partition's directory went with its files");
    }

    #[test]
    fn retention_on_disk_deletes_whole_segments_and_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = spilling(dir.path(), 2_000, 10_000);
        // 100 bytes per record; at most 30 000 bytes kept.
        for i in 0..1_000 {
            log.append(None, value(i, 36), i as i64, Some(30_000));
            assert!(log.bytes() <= 30_000);
        }
        let start = log.log_start();
        assert_eq!(log.high_watermark(), 1_000);
        assert!(
            log.bytes() >= 30_000 - 10_000 - 100,
            "at most a segment short of the limit: {}",
            log.bytes()
        );
        assert_eq!(start, log.segments[0].base(), "the log starts at a segment");
        assert_eq!(log.read("t", 0, start - 1, 5), vec![], "below the start is gone");
        assert_eq!(log.read("t", 0, start, 5)[0].offset, start);
        let files = std::fs::read_dir(dir.path().join("poke-orders-2")).unwrap().count();
        assert_eq!(files, log.segments.len(), "deleted segments left no files");

        // By age: a segment goes once its newest record is older than the cutoff.
        let first_next = log.segments[0].next();
        let newest_of_first = first_next as i64 - 1;
        assert_eq!(log.delete_older_than(newest_of_first), 0, "its newest record is not older");
        assert_eq!(log.delete_older_than(newest_of_first + 1), first_next - start);
        assert_eq!(log.log_start(), first_next);
        assert_eq!(log.delete_older_than(10_000), 1_000 - first_next, "everything, memory included");
        assert_eq!((log.log_start(), log.high_watermark(), log.bytes()), (1_000, 1_000, 0));
        assert_eq!(log.append(None, Bytes::new(), 0, None), 1_000);
    }

    #[test]
    fn a_log_that_cannot_write_keeps_everything_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // The partition's directory cannot be created: a file has its name.
        std::fs::write(dir.path().join("poke-orders-2"), b"not a directory").unwrap();
        let mut log = spilling(dir.path(), 1_000, 10_000);
        for i in 0..100 {
            log.append(None, value(i, 36), i as i64, None);
        }
        assert!(log.spill.as_ref().is_some_and(|s| s.failed));
        assert_eq!((log.log_start(), log.memory_bytes(), log.disk_bytes()), (0, 10_000, 0));
        assert_eq!(log.read("t", 0, 0, 1_000).len(), 100, "nothing was lost");
    }
}
