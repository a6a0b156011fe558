//! The run's output directory, held for the whole run.
//!
//! - A non-empty directory chaoslab did not write (no [`OUT_MARKER`]) is refused, never emptied.
//! - The marker is locked (an advisory `flock`) while a run writes the directory, and holds the writer's
//!   PID: a second run on the same directory is refused with that PID, instead of deleting files under
//!   the first.
//! - The marker says whether the run that wrote the directory finished. A finished run's files are
//!   replaced by the next run (said in the log); those of a run that did not finish (killed, crashed,
//!   powered off) are kept: the directory is moved aside to the first free `<out>.crashed-N` beside it.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The marker that tells a directory was written by chaoslab and may be reused.
pub const OUT_MARKER: &str = ".chaoslab-run";

const HEADER: &str = "written by chaoslab; its contents are replaced by the next run";

/// What became of the directory's previous contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// Nothing was there.
    None,
    /// A finished run's files, removed.
    Replaced,
    /// An unfinished run's files, moved to this directory.
    KeptAt(PathBuf),
}

/// An output directory locked for one run. The lock goes with the value (or the process).
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    marker: File,
    finished: std::sync::atomic::AtomicBool,
    /// What was in the directory before.
    pub previous: Previous,
}

impl OutDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the run ended cleanly: the next run may replace the files.
    pub fn finish(&self) -> anyhow::Result<()> {
        write_state(&self.marker, "finished")
            .with_context(|| format!("cannot write {}", self.path.join(OUT_MARKER).display()))?;
        self.finished.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A run that ends without [`OutDir::finish`] but in order (an error, a failed build) leaves files the
/// next run may replace; only a process that never got here (killed, crashed) leaves `running`.
impl Drop for OutDir {
    fn drop(&mut self) {
        if !self.finished.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = write_state(&self.marker, "ended");
        }
    }
}

/// Makes `out` ready for a run and locks it until the returned value is dropped.
pub fn prepare(out: &Path) -> anyhow::Result<OutDir> {
    let mut previous = Previous::None;
    let mut held = None;
    if out.exists() {
        let marker = out.join(OUT_MARKER);
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_none();
        if !empty && !marker.exists() {
            anyhow::bail!(
                "output directory {} is not empty and was not written by chaoslab; choose another --out",
                out.display()
            );
        }
        if marker.exists() {
            let mut file = open_marker(&marker)?;
            lock(&mut file, out)?;
            let mut text = String::new();
            // A marker that is not text is an old or damaged one: treated as finished.
            let _ = file.read_to_string(&mut text);
            if state(&text) == Some("running") {
                let aside = free_sibling(out)?;
                std::fs::rename(out, &aside).with_context(|| {
                    format!(
                        "cannot move the unfinished run in {} aside to {}",
                        out.display(),
                        aside.display()
                    )
                })?;
                tracing::warn!(
                    "the run that wrote {} did not finish (PID {}); its files are kept in {}",
                    out.display(),
                    field(&text, "pid").unwrap_or("?"),
                    aside.display()
                );
                previous = Previous::KeptAt(aside);
            } else {
                clear(out)?;
                previous = Previous::Replaced;
                held = Some(file);
            }
        }
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let marker = match held {
        Some(file) => file,
        None => {
            let mut file = open_marker(&out.join(OUT_MARKER))?;
            lock(&mut file, out)?;
            file
        }
    };
    write_state(&marker, "running").with_context(|| format!("cannot write in {}", out.display()))?;
    if previous == Previous::Replaced {
        tracing::info!("replacing the previous run's files in {}", out.display());
    }
    Ok(OutDir { path: out.to_path_buf(), marker, finished: false.into(), previous })
}

fn open_marker(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Takes the marker's lock, or says which process holds it.
fn lock(file: &mut File, out: &Path) -> anyhow::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = field(&text, "pid").unwrap_or("unknown");
            anyhow::bail!(
                "output directory {} is in use by another chaoslab run (PID {pid}); \
                 wait for it to end or choose another --out",
                out.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", out.join(OUT_MARKER).display()))
        }
    }
}

fn write_state(mut file: &File, state: &str) -> std::io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{HEADER}\nstate: {state}\n")?;
    // Only while running: a finished directory holds the same bytes whichever process wrote it.
    if state == "running" {
        writeln!(file, "pid: {}", std::process::id())?;
    }
    file.sync_data()
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

fn state(text: &str) -> Option<&str> {
    field(text, "state")
}

/// The first `<out>.crashed-N` that does not exist.
fn free_sibling(out: &Path) -> anyhow::Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("{} has no directory name to keep a run beside", out.display()))?
        .to_string_lossy()
        .into_owned();
    (1..10_000)
        .map(|n| out.with_file_name(format!("{name}.crashed-{n}")))
        .find(|p| !p.exists())
        .with_context(|| format!("no free name beside {} to keep the unfinished run", out.display()))
}

/// Removes everything but the marker.
fn clear(out: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == OUT_MARKER) {
            continue;
        }
        let res = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        res.with_context(|| format!("cannot clear {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a killed run leaves: its files, and a marker that says running, with no lock held.
    fn killed(out: &Path) {
        drop(prepare(out).unwrap());
        std::fs::write(out.join(OUT_MARKER), format!("{HEADER}\nstate: running\npid: 4242\n")).unwrap();
        std::fs::write(out.join("orders.db"), "1974 orders").unwrap();
    }

    #[test]
    fn a_run_that_ends_in_an_error_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        drop(prepare(&out).unwrap()); // an error: ended in order
        assert!(std::fs::read_to_string(out.join(OUT_MARKER)).unwrap().contains("state: ended"));
        assert_eq!(prepare(&out).unwrap().previous, Previous::Replaced);
    }

    #[test]
    fn a_second_run_on_a_held_directory_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = prepare(&out).unwrap();
        std::fs::write(out.join("trace.jsonl"), "{}\n").unwrap();
        let err = prepare(&out).unwrap_err().to_string();
        assert!(err.contains("in use by another chaoslab run"), "{err}");
        assert!(err.contains(&format!("PID {}", std::process::id())), "{err}");
        assert_eq!(std::fs::read_to_string(out.join("trace.jsonl")).unwrap(), "{}\n", "nothing was deleted");
        first.finish().unwrap();
        drop(first);
        let second = prepare(&out).unwrap();
        assert_eq!(second.previous, Previous::Replaced);
        assert!(!out.join("trace.jsonl").exists(), "a finished run's files are replaced");
    }

    #[test]
    fn an_unfinished_run_is_moved_aside_not_wiped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        killed(&out);
        let next = prepare(&out).unwrap();
        let aside = dir.path().join("out.crashed-1");
        assert_eq!(next.previous, Previous::KeptAt(aside.clone()));
        assert_eq!(std::fs::read_to_string(aside.join("orders.db")).unwrap(), "1974 orders");
        assert!(!out.join("orders.db").exists());
        drop(next);
        killed(&out);
        // The second crash goes to the next free name.
        assert_eq!(prepare(&out).unwrap().previous, Previous::KeptAt(dir.path().join("out.crashed-2")));
    }

    #[test]
    fn a_foreign_directory_is_refused_and_an_old_marker_counts_as_finished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("thesis.tex"), "mine").unwrap();
        let err = prepare(dir.path()).unwrap_err().to_string();
        assert!(err.contains("was not written by chaoslab"), "{err}");
        assert!(dir.path().join("thesis.tex").exists());
        let old = dir.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(
            old.join(OUT_MARKER),
            "written by chaoslab; its contents are replaced by the next run\n",
        )
        .unwrap();
        std::fs::write(old.join("trace.jsonl"), "").unwrap();
        assert_eq!(prepare(&old).unwrap().previous, Previous::Replaced);
    }
}
