//! `chaoslab bench soak --for 10m`: the reference pipeline live, the sensor at full rate, its resident
//! memory printed over time — with the records stored and indexed meanwhile, and the disk its output
//! takes (a full-rate run with the full trace writes gigabytes a minute) — and whether it levelled off.
//!
//! What keeps it flat: `HADOOP`'s segments and namespace on disk, `ELASTICSEARCH`'s newest documents in
//! memory and the rest in its files, the bus's logs bounded by `retention.bytes`, the TSDB's retention.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::bus::kafka_cluster::KafkaClusterConfig;
use crate::catalog::reference_flow;
use crate::kernel::trace::TraceLevel;
use crate::orders::order_store::OrderStoreConfig;
use crate::runner::Run;

/// Resident set size now, in KiB (Linux `VmRSS`).
pub fn rss_kib() -> Option<u64> {
    super::proc_status_kib("self", "VmRSS")
}

/// Bytes of the files under `dir`, symbolic links not followed (0 for what cannot be read).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    (entries.flatten())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs the soak for `duration`, sampling every `every`.
pub fn run(
    duration: Duration,
    every: Duration,
    rate_ms: u64,
    orders: bool,
    without: &[String],
    trace: TraceLevel,
) -> anyhow::Result<()> {
    println!(
        "chaoslab bench soak ({} build): live reference pipeline{}, sensor every {rate_ms} ms (0: full rate), trace {trace:?}, {} s",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        if orders { "" } else { " without the order services" },
        duration.as_secs()
    );
    let dir = super::tempfile_dir()?;
    let mut flow = reference_flow()?;
    let mut gone: Vec<String> = without.to_vec();
    if !orders {
        gone.extend(flow.each::<KafkaClusterConfig>().map(|(n, _)| n.clone()));
        gone.extend(flow.each::<OrderStoreConfig>().map(|(n, _)| n.clone()));
    }
    if let Some(unknown) = gone.iter().find(|n| !flow.components.contains_key(n.as_str())) {
        anyhow::bail!("--without {unknown}: the reference pipeline has no such component");
    }
    flow.without(&gone.iter().map(String::as_str).collect::<Vec<_>>());
    if !without.is_empty() {
        println!("without {}", without.join(", "));
    }
    let out = dir.join("soak");
    let run = Run::new(flow).out(&out).seed(1).rate_ms(rate_ms).trace_level(trace);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let samples = rt.block_on(async {
        let handle = super::live_on_free_ports(run)?.live().await.context("cannot start the live run")?;
        let m = &handle.pipeline.metrics;
        let (sensor, stored, indexed) =
            (m.component("SENSOR"), m.component("HADOOP"), m.component("ELASTICSEARCH"));
        let started = Instant::now();
        let mut samples = Vec::new();
        println!(
            "{:>8} {:>10} {:>12} {:>12} {:>12} {:>10}",
            "t (s)", "RSS (MB)", "published", "stored", "indexed", "out (MB)"
        );
        while started.elapsed() < duration {
            tokio::time::sleep(every.min(duration.saturating_sub(started.elapsed()))).await;
            let rss = rss_kib().unwrap_or(0) as f64 / 1024.0;
            let t = started.elapsed().as_secs_f64();
            println!(
                "{t:>8.0} {rss:>10.1} {:>12} {:>12} {:>12} {:>10.0}",
                sensor.records_out.get(),
                stored.records_out.get(),
                indexed.records_out.get(),
                dir_bytes(&out) as f64 / 1e6
            );
            samples.push((t, rss));
        }
        let records = stored.records_out.get();
        handle.stop().await?;
        anyhow::Ok((samples, records))
    });
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    let (samples, records) = samples?;
    let half = samples.len() / 2;
    let max = |s: &[(f64, f64)]| s.iter().map(|&(_, r)| r).fold(0.0, f64::max);
    let (first, second) = (max(&samples[..half]), max(&samples[half..]));
    if first > 0.0 {
        let growth = (second - first) / first * 100.0;
        println!(
            "peak RSS {:.1} MB; first half {first:.1} MB, second half {second:.1} MB ({growth:+.1} %); {records} records stored; {}",
            first.max(second),
            if growth < 10.0 { "levelled off" } else { "still growing" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::dir_bytes;

    #[test]
    fn the_output_size_counts_nested_files_and_does_not_follow_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hdfs/nifi/2020-02-21")).unwrap();
        std::fs::write(dir.path().join("trace.jsonl"), vec![b'x'; 1000]).unwrap();
        std::fs::write(dir.path().join("hdfs/nifi/2020-02-21/seg.log"), vec![b'y'; 234]).unwrap();
        // A link back to the top would loop forever if followed.
        std::os::unix::fs::symlink(dir.path(), dir.path().join("hdfs/loop")).unwrap();
        let link = std::fs::symlink_metadata(dir.path().join("hdfs/loop")).unwrap().len();
        assert_eq!(dir_bytes(dir.path()), 1000 + 234 + link);
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }
}
