//! The segment layout's namespace: which logical file lives in which segment, at which offset — the
//! part of HDFS's NameNode a single writer needs. It is an SQLite table under the store's root
//! (`_namespace.db`), so the no-overwrite check is a B-tree lookup and memory stays bounded by SQLite's
//! page cache however many records a run stores.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// The namespace file's name under the store's root.
pub const FILE: &str = "_namespace.db";

/// Where one logical file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The day directory (`YYYY-MM-DD`).
    pub day: String,
    /// The file's name in it (`<uuid>.json`).
    pub name: String,
    /// The segment's number (`blk_<number>.seg` in the day directory).
    pub segment: u64,
    /// Offset of the payload in the segment.
    pub offset: u64,
    /// Payload length.
    pub len: u64,
}

/// The namespace, open for lookups and (for the store's one writer) inserts.
pub struct Namespace {
    conn: Connection,
}

fn io(e: rusqlite::Error) -> std::io::Error {
    std::io::Error::other(format!("namespace: {e}"))
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Namespace {
    /// Opens (creating when `create`) the namespace of the store at `root`.
    pub fn open(root: &Path, create: bool) -> std::io::Result<Namespace> {
        let path = root.join(FILE);
        if !create && !path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            ));
        }
        let conn = Connection::open(&path).map_err(io)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(io)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(io)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS files (
                day TEXT NOT NULL, name TEXT NOT NULL,
                segment INTEGER NOT NULL, offset INTEGER NOT NULL, len INTEGER NOT NULL,
                PRIMARY KEY (day, name)) WITHOUT ROWID;",
        )
        .map_err(io)?;
        Ok(Namespace { conn })
    }

    /// Whether `day/name` exists.
    pub fn exists(&self, day: &str, name: &str) -> std::io::Result<bool> {
        Ok(self.lookup(day, name)?.is_some())
    }

    /// Where `day/name` is, if it exists.
    pub fn lookup(&self, day: &str, name: &str) -> std::io::Result<Option<Entry>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT segment, offset, len FROM files WHERE day = ?1 AND name = ?2")
            .map_err(io)?;
        stmt.query_row(params![day, name], |r| {
            let get = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
            Ok(Entry {
                day: day.to_owned(),
                name: name.to_owned(),
                segment: get(0)?,
                offset: get(1)?,
                len: get(2)?,
            })
        })
        .optional()
        .map_err(io)
    }

    /// Records `entries` in one transaction: all of them, or none.
    pub fn insert(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let tx = self.conn.transaction().map_err(io)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO files (day, name, segment, offset, len) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(io)?;
            for e in entries {
                stmt.execute(params![e.day, e.name, int(e.segment), int(e.offset), int(e.len)])
                    .map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }

    /// The highest segment number recorded (0 when there is none).
    pub fn last_segment(&self) -> std::io::Result<u64> {
        let max: Option<i64> =
            self.conn.query_row("SELECT max(segment) FROM files", [], |r| r.get(0)).map_err(io)?;
        Ok(max.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    /// How many logical files there are.
    pub fn count(&self) -> std::io::Result<u64> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM files", [], |r| r.get(0)).map_err(io)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(day: &str, name: &str, segment: u64, offset: u64) -> Entry {
        Entry { day: day.into(), name: name.into(), segment, offset, len: 2 }
    }

    #[test]
    fn records_looks_up_and_refuses_a_second_entry_for_a_path() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Namespace::open(dir.path(), false).is_err(), "not created unless asked");
        let mut ns = Namespace::open(dir.path(), true).unwrap();
        assert_eq!((ns.last_segment().unwrap(), ns.count().unwrap()), (0, 0));
        ns.insert(&[entry("2020-02-21", "a.json", 1, 20), entry("2020-02-22", "a.json", 3, 20)]).unwrap();
        assert!(ns.exists("2020-02-21", "a.json").unwrap());
        assert!(!ns.exists("2020-02-21", "b.json").unwrap());
        assert_eq!(ns.lookup("2020-02-22", "a.json").unwrap(), Some(entry("2020-02-22", "a.json", 3, 20)));
        // A batch holding a path already recorded is refused whole.
        let err = ns.insert(&[entry("2020-02-21", "c.json", 4, 0), entry("2020-02-21", "a.json", 4, 9)]);
        assert!(err.is_err());
        assert!(!ns.exists("2020-02-21", "c.json").unwrap());
        assert_eq!((ns.last_segment().unwrap(), ns.count().unwrap()), (3, 2));
        drop(ns);
        let again = Namespace::open(dir.path(), false).unwrap();
        assert_eq!(again.count().unwrap(), 2, "kept on disk");
    }
}
