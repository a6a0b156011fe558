//! `chaoslab hdfs ls|cat|export DIR`: the logical files of a `file-store` (`HADOOP`), whatever its layout —
//! as `hdfs dfs -ls`, `-cat` and `-get` show a real HDFS's.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use chaoslab::sinks::file_store::read;

/// What to do with a file store.
#[derive(Subcommand, Debug)]
pub enum HdfsCommand {
    /// List the logical files: size in bytes and path, one per line, in the store's order.
    Ls {
        /// The store (e.g. out/hdfs/nifi), or a run's output directory.
        dir: PathBuf,
    },
    /// Print logical files' bytes.
    Cat {
        /// The store, or a run's output directory.
        dir: PathBuf,
        /// Paths inside the store, as `ls` prints them (<day>/<name>.json).
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Write every logical file as a real file (the reference layout: one file per record).
    Export {
        /// The store, or a run's output directory.
        dir: PathBuf,
        /// A new or empty directory.
        #[arg(long)]
        to: PathBuf,
    },
}

/// Runs one `hdfs` command.
pub fn execute(command: HdfsCommand) -> anyhow::Result<()> {
    match command {
        HdfsCommand::Ls { dir } => {
            let root = store(&dir)?;
            let (mut files, mut bytes, mut problems) = (0u64, 0u64, 0u64);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut failed = None;
            read::walk(&root, &mut |path, content| {
                let rel = path.strip_prefix(&root).unwrap_or(path).display();
                match content {
                    Ok(b) => {
                        files += 1;
                        bytes += b.len() as u64;
                        failed = writeln!(out, "{:>8} {rel}", b.len()).err();
                    }
                    Err(why) => {
                        problems += 1;
                        eprintln!("warning: {rel}: {why}");
                    }
                }
                if failed.is_some() { read::Next::Break(()) } else { read::Next::Continue(()) }
            })?;
            if let Some(e) = failed {
                // A closed pipe (`| head`) ends the listing; anything else is an error.
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e).context("cannot write the listing");
                }
                return Ok(());
            }
            out.flush().ok();
            let unreadable = if problems > 0 { format!(", {problems} unreadable") } else { String::new() };
            eprintln!("{files} files, {bytes} bytes{unreadable}");
            Ok(())
        }
        HdfsCommand::Cat { dir, paths } => {
            let root = store(&dir)?;
            let mut out = std::io::stdout().lock();
            for p in paths {
                let bytes = read::cat(&root, &p).with_context(|| format!("cannot read {p}"))?;
                out.write_all(&bytes)?;
            }
            out.flush()?;
            Ok(())
        }
        HdfsCommand::Export { dir, to } => {
            let root = store(&dir)?;
            let done =
                read::export(&root, &to).with_context(|| format!("cannot export {}", root.display()))?;
            for p in &done.problems {
                eprintln!("warning: not exported: {p}");
            }
            println!("{} files, {} bytes written to {}", done.files, done.bytes, to.display());
            Ok(())
        }
    }
}

fn store(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    Ok(read::resolve(dir))
}
