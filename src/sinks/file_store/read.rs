//! Reading a file store whatever its layout: the logical files in order (for `SPARK` and `chaoslab hdfs
//! ls`), one file by its path (`chaoslab hdfs cat`), and the whole store materialised as one real file
//! per record in the reference layout (`chaoslab hdfs export`).
//!
//! A directory is read in name order; a segment yields its frames in write order, a `*.json` file
//! itself (the `files` layout, or anything a user put there). A frame or file that cannot be read is
//! reported to the visitor and the walk goes on; only a directory that cannot be listed stops it, or the
//! visitor answering [`ControlFlow::Break`].

use std::io;
use std::ops::ControlFlow;
use std::path::{Component, Path, PathBuf};

use super::namespace::{self, Namespace};
use super::segments::{self, FrameError, Frames};

/// The visitor's view of one logical file: its bytes, or why they cannot be read.
pub type Visit<'a> = Result<&'a [u8], String>;

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// What a visitor answers: go on, or stop the walk here.
pub type Next = ControlFlow<()>;

/// Visits every logical file under `root` with its path (as if each were a real file) and its bytes,
/// until the visitor answers [`ControlFlow::Break`]. A missing `root` is an empty store, and a directory
/// that vanishes meanwhile is skipped.
pub fn walk(root: &Path, visit: &mut dyn FnMut(&Path, Visit<'_>) -> Next) -> io::Result<()> {
    walk_dir(root, visit).map(|_| ())
}

fn walk_dir(root: &Path, visit: &mut dyn FnMut(&Path, Visit<'_>) -> Next) -> io::Result<Next> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Next::Continue(())),
        Err(e) => return Err(at(root, e)),
    };
    let mut entries: Vec<_> = entries.collect::<io::Result<_>>().map_err(|e| at(root, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Symlinked directories are not followed: a store never makes them, and a loop would not end.
        let next = if entry.file_type().map_err(|e| at(&path, e))?.is_dir() {
            walk_dir(&path, visit)?
        } else if segments::is_segment(&name) {
            read_segment(root, &path, visit)?
        } else if name.ends_with(".json") && !name.starts_with('.') {
            match std::fs::read(&path) {
                Ok(bytes) => visit(&path, Ok(&bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    visit(&path, Err("vanished while scanning".into()))
                }
                Err(e) => return Err(at(&path, e)),
            }
        } else {
            Next::Continue(())
        };
        if next.is_break() {
            return Ok(next);
        }
    }
    Ok(Next::Continue(()))
}

fn read_segment(
    dir: &Path,
    path: &Path,
    visit: &mut dyn FnMut(&Path, Visit<'_>) -> Next,
) -> io::Result<Next> {
    let mut frames = match Frames::open(path) {
        Ok(frames) => frames,
        Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(Next::Continue(())),
        Err(FrameError::Io(e)) => return Err(at(path, e)),
        Err(e) => return Ok(visit(path, Err(e.to_string()))),
    };
    while let Some(frame) = frames.next_frame() {
        let next = match frame {
            Ok(f) => visit(&dir.join(&f.name), Ok(&f.bytes)),
            Err(FrameError::Io(e)) => return Err(at(path, e)),
            Err(e) => visit(path, Err(e.to_string())),
        };
        if next.is_break() {
            return Ok(next);
        }
    }
    Ok(Next::Continue(()))
}

/// The bytes of the logical file `rel` (`<day>/<name>.json`) of the store at `root`.
pub fn cat(root: &Path, rel: &str) -> io::Result<Vec<u8>> {
    let not_found =
        || io::Error::new(io::ErrorKind::NotFound, format!("{rel}: no such file in {}", root.display()));
    let rel_path = Path::new(rel);
    if rel.is_empty() || !rel_path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rel:?}: a path inside the store is <day>/<name>.json"),
        ));
    }
    if let Some((day, name)) = rel.split_once('/')
        && root.join(namespace::FILE).exists()
    {
        let ns = Namespace::open(root, false)?;
        if let Some(entry) = ns.lookup(day, name)? {
            return segments::read_entry(root, &entry);
        }
    }
    match std::fs::read(root.join(rel_path)) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A store without a namespace (a copy, a crashed writer's frames): look through the segments.
            let mut found = None;
            let want = root.join(rel_path);
            walk(root, &mut |path, bytes| {
                if path == want {
                    found = bytes.ok().map(<[u8]>::to_vec);
                }
                if found.is_some() { Next::Break(()) } else { Next::Continue(()) }
            })?;
            found.ok_or_else(not_found)
        }
        Err(e) => Err(e),
    }
}

/// What an export did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exported {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// What could not be read, with why.
    pub problems: Vec<String>,
}

/// Writes every logical file of the store at `root` as a real file under `target` (which must not exist
/// or be empty): the reference layout, one file per record.
pub fn export(root: &Path, target: &Path) -> io::Result<Exported> {
    if target.exists() && std::fs::read_dir(target).map_err(|e| at(target, e))?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty; export into a new directory", target.display()),
        ));
    }
    let mut done = Exported::default();
    let mut failed: Option<io::Error> = None;
    walk(root, &mut |path, bytes| {
        let rel = path.strip_prefix(root).unwrap_or(path);
        match bytes {
            Ok(bytes) => {
                let dest = target.join(rel);
                let written = dest
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::OpenOptions::new().write(true).create_new(true).open(&dest))
                    .and_then(|mut f| io::Write::write_all(&mut f, bytes));
                match written {
                    Ok(()) => {
                        done.files += 1;
                        done.bytes += bytes.len() as u64;
                    }
                    Err(e) => failed = Some(at(&dest, e)),
                }
            }
            Err(why) => done.problems.push(format!("{}: {why}", rel.display())),
        }
        if failed.is_some() { Next::Break(()) } else { Next::Continue(()) }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// The store a user means by `dir`: `dir` itself, or a run's output directory's `hdfs/nifi`.
pub fn resolve(dir: &Path) -> PathBuf {
    let in_run = dir.join("hdfs/nifi");
    if !dir.join(namespace::FILE).exists() && in_run.is_dir() { in_run } else { dir.to_path_buf() }
}

#[cfg(test)]
mod tests {
    use super::super::segments::SegmentWriter;
    use super::*;

    fn listing(root: &Path) -> Vec<(String, Result<Vec<u8>, String>)> {
        let mut out = Vec::new();
        walk(root, &mut |p, b| {
            out.push((p.strip_prefix(root).unwrap().display().to_string(), b.map(<[u8]>::to_vec)));
            Next::Continue(())
        })
        .unwrap();
        out
    }

    /// A store with two days of segments, a real file as the `files` layout writes it, and a torn frame.
    fn mixed_store(root: &Path) {
        let mut w = SegmentWriter::open(root, 1 << 20).unwrap();
        w.put("2020-02-21", "b", b"{\"n\":2}").unwrap();
        w.put("2020-02-21", "a", b"{\"n\":1}").unwrap();
        w.put("2020-02-22", "c", b"{\"n\":3}").unwrap();
        w.commit().unwrap();
        std::fs::write(root.join("2020-02-21/x.json"), b"{\"n\":0}").unwrap();
        std::fs::write(root.join("2020-02-21/.x.json.tmp"), b"half").unwrap();
        let seg = root.join("2020-02-22/blk_000002.seg");
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes.extend_from_slice(b"d.json 10 00000000\n{\"n\"");
        std::fs::write(&seg, bytes).unwrap();
    }

    #[test]
    fn walks_segments_in_write_order_and_real_files_and_reports_torn_frames() {
        let dir = tempfile::tempdir().unwrap();
        mixed_store(dir.path());
        let got = listing(dir.path());
        let ok = |p: &str, b: &str| (p.to_string(), Ok(b.as_bytes().to_vec()));
        assert_eq!(
            got[..4],
            [
                ok("2020-02-21/b.json", "{\"n\":2}"),
                ok("2020-02-21/a.json", "{\"n\":1}"),
                ok("2020-02-21/x.json", "{\"n\":0}"),
                ok("2020-02-22/c.json", "{\"n\":3}")
            ]
        );
        assert_eq!(got.len(), 5);
        assert_eq!(got[4].0, "2020-02-22/blk_000002.seg");
        assert!(got[4].1.as_ref().unwrap_err().starts_with("torn frame at byte"), "{:?}", got[4]);
        assert!(listing(&dir.path().join("absent")).is_empty());
    }

    #[test]
    fn cat_finds_files_through_the_namespace_the_segments_or_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        mixed_store(dir.path());
        assert_eq!(cat(dir.path(), "2020-02-21/a.json").unwrap(), b"{\"n\":1}");
        assert_eq!(cat(dir.path(), "2020-02-21/x.json").unwrap(), b"{\"n\":0}");
        assert_eq!(cat(dir.path(), "2020-02-22/nope.json").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(cat(dir.path(), "../etc/passwd").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        std::fs::remove_file(dir.path().join(namespace::FILE)).unwrap();
        assert_eq!(cat(dir.path(), "2020-02-22/c.json").unwrap(), b"{\"n\":3}", "found by scanning");
    }

    #[test]
    fn export_materialises_one_file_per_record_and_refuses_a_full_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        mixed_store(&root);
        let target = dir.path().join("export");
        let done = export(&root, &target).unwrap();
        assert_eq!((done.files, done.bytes, done.problems.len()), (4, 28, 1));
        assert_eq!(std::fs::read(target.join("2020-02-22/c.json")).unwrap(), b"{\"n\":3}");
        let exported = listing(&target);
        let original: Vec<_> = listing(&root).into_iter().filter(|(_, b)| b.is_ok()).collect();
        let mut sorted = original.clone();
        sorted.sort();
        assert_eq!(exported, sorted, "the same files, in name order");
        let err = export(&root, &target).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("hdfs/nifi")).unwrap();
        assert_eq!((resolve(&run), resolve(&root)), (run.join("hdfs/nifi"), root));
    }
}
