//! Benchmark (not a test): create 10,000 namespaced ConfigMaps, list them, and fan a watch
//! out to 10 watchers. Prints requests/s, median list latency and resident memory.
//!
//! `cargo run --release -p kube-emulator --example bench`

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube_emulator::Emulator;

const OBJECTS: usize = 10_000;
const WATCHERS: usize = 10;
const LISTS: usize = 20;
const CONCURRENCY: usize = 16;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client()?);
    let rss_before = rss_kib();

    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let s = api
            .watch(
                &WatchParams::default().timeout(290),
                &emulator.resource_version().to_string(),
            )
            .await?;
        watchers.push(tokio::spawn(async move {
            let mut s = s.boxed();
            let mut seen = 0usize;
            while let Ok(Some(ev)) = s.try_next().await {
                if matches!(ev, WatchEvent::Added(_)) {
                    seen += 1;
                    if seen == OBJECTS {
                        break;
                    }
                }
            }
            (seen, Instant::now())
        }));
    }

    let start = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("cm-{i:05}"), "labels": {"bench": "yes"}},
                    "data": {"index": i.to_string()}}))?;
                api.create(&PostParams::default(), &cm).await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let create_time = start.elapsed();

    let mut latest = start;
    let mut delivered = 0;
    for w in watchers {
        let (seen, at) = tokio::time::timeout(Duration::from_secs(120), w).await??;
        delivered += seen;
        latest = latest.max(at);
    }
    let fanout_time = latest - start;

    let mut lats = Vec::new();
    for _ in 0..LISTS {
        let t = Instant::now();
        let l = api.list(&ListParams::default()).await?;
        lats.push(t.elapsed());
        assert_eq!(l.items.len(), OBJECTS);
    }
    lats.sort();
    println!("objects created:          {OBJECTS} ({CONCURRENCY} concurrent clients)");
    println!(
        "create throughput:        {:.0} requests/s",
        OBJECTS as f64 / create_time.as_secs_f64()
    );
    println!(
        "watch fan-out:            {delivered} events to {WATCHERS} watchers, all delivered {:.2}s after the first create",
        fanout_time.as_secs_f64()
    );
    println!(
        "list of {OBJECTS}: median {:.1} ms (of {LISTS})",
        lats[LISTS / 2].as_secs_f64() * 1e3
    );
    println!(
        "resident memory:          {} MiB (before {} MiB; client and server in one process)",
        rss_kib() / 1024,
        rss_before / 1024
    );
    Ok(())
}
