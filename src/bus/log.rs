//! One partition's log: an append-only sequence of records addressed by offset.
//!
//! Offsets start at 0 and never repeat. The *log start offset* is the first offset still stored; the *high
//! watermark* is the offset the next record will get (replicas catch up instantly in this bus, so the log
//! end and the high watermark coincide). Retention deletes records from the head only, as Kafka deletes old
//! segments, so the stored offsets always form the range `log_start..high_watermark` — by age
//! (`retention.ms`, `PartitionLog::delete_older_than`) and by size (`retention.bytes`, on append: the log is
//! this bus's memory).

use std::collections::VecDeque;

use bytes::Bytes;

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

/// What the log keeps per record; the offset is implied by the position.
#[derive(Clone, Debug)]
struct Stored {
    key: Option<Bytes>,
    value: Bytes,
    timestamp_ms: i64,
}

/// The records of one partition, shared by all its replicas.
#[derive(Debug, Default)]
pub(crate) struct PartitionLog {
    start: u64,
    records: VecDeque<Stored>,
    /// Bytes of the stored records ([`Stored::size`]).
    bytes: u64,
}

/// Bookkeeping counted per stored record besides its key and value (offset, timestamp, buffers).
const RECORD_OVERHEAD: u64 = 64;

impl Stored {
    /// What the record counts against `retention.bytes`.
    fn size(&self) -> u64 {
        (self.key.as_ref().map_or(0, Bytes::len) + self.value.len()) as u64 + RECORD_OVERHEAD
    }
}

impl PartitionLog {
    /// First offset still stored (equal to the high watermark when the log is empty).
    pub(crate) fn log_start(&self) -> u64 {
        self.start
    }

    /// Offset the next appended record gets.
    pub(crate) fn high_watermark(&self) -> u64 {
        self.start + self.records.len() as u64
    }

    /// Appends a record and returns its offset; then, while the log holds more than `max_bytes`, deletes
    /// records from the head (the newest record always stays).
    pub(crate) fn append(
        &mut self,
        key: Option<Bytes>,
        value: Bytes,
        timestamp_ms: i64,
        max_bytes: Option<u64>,
    ) -> u64 {
        let stored = Stored { key, value, timestamp_ms };
        self.bytes += stored.size();
        self.records.push_back(stored);
        let offset = self.high_watermark() - 1;
        if let Some(max) = max_bytes {
            while self.bytes > max && self.records.len() > 1 {
                self.pop_head();
            }
        }
        offset
    }

    fn pop_head(&mut self) {
        if let Some(r) = self.records.pop_front() {
            self.bytes -= r.size();
            self.start += 1;
        }
    }

    /// Bytes held (what `retention.bytes` compares).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Up to `max` records from offset `from` on; empty if `from` is outside the stored range.
    pub(crate) fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Vec<ConsumerRecord> {
        let Some(skip) = from.checked_sub(self.start) else { return Vec::new() };
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        (from..)
            .zip(self.records.iter().skip(skip).take(max))
            .map(|(offset, r)| ConsumerRecord {
                topic: topic.to_owned(),
                partition,
                offset,
                key: r.key.clone(),
                value: r.value.clone(),
                timestamp_ms: r.timestamp_ms,
            })
            .collect()
    }

    /// Deletes records from the head while their timestamp is older than `cutoff_ms`, stopping at the first
    /// newer one (a younger record protects everything behind it, as a segment does). Returns how many went.
    pub(crate) fn delete_older_than(&mut self, cutoff_ms: i64) -> u64 {
        let mut deleted = 0;
        while self.records.front().is_some_and(|r| r.timestamp_ms < cutoff_ms) {
            self.pop_head();
            deleted += 1;
        }
        deleted
    }
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
}
