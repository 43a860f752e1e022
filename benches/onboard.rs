//! Benchmark: onboard many Tenants against the emulator and measure time to Ready, API
//! requests per Tenant, the operator's peak memory, and the writes of a full resync of
//! unchanged Tenants.
//!
//! The emulator runs in this process (so its request counters can be read); the operator
//! runs as its own process — the release `landlord` binary — so its memory is its own.
//!
//! ```sh
//! cargo build --release --bin landlord && cargo bench --bench onboard -- 1000
//! ```

mod common;

use std::time::{Duration, Instant};

use common::{Failure, Operator, print_writes, total, wait_until_all, writes};
use kube::api::Api;
use kube_emulator::Emulator;
use landlord::api::Tenant;

const RESYNC_SECONDS: u64 = 10;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    if !common::invoked_by_cargo_bench() {
        println!("onboard: a benchmark, run by `cargo bench` only");
        return Ok(());
    }
    // The first number among the arguments is the tenant count.
    let tenants = common::count_arg(1000);
    let emulator = Emulator::builder().history_limit(200_000).serve().await?;
    let admin = emulator.client()?;
    let dir = std::env::temp_dir().join(format!("landlord-onboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig)?;
    common::prepare_cluster(&admin).await?;
    let operator = Operator::start(&admin, &kubeconfig, 16, RESYNC_SECONDS).await?;
    let rss_idle = operator.peak_rss_kib()?;

    // Onboard.
    emulator.reset_request_counts();
    let api: Api<Tenant> = Api::all(admin.clone());
    let started = Instant::now();
    let created_ok = common::create_tenants(&api, tenants, serde_json::json!({})).await;
    let create_done = started.elapsed();
    let (all_ready, our_lists) =
        wait_until_all(&api, tenants, &["Ready"], started, Duration::from_secs(600)).await?;
    let onboarding = emulator.request_counts();
    // Our own requests: the Tenant creates and the polling lists.
    let operator_requests = total(&onboarding) - created_ok as u64 - our_lists;
    let operator_writes = writes(&onboarding) - created_ok as u64;

    // Steady state: let the last reconciles settle, then watch a full resync period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    emulator.reset_request_counts();
    let before = operator.reconciles("tenant").await?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS + 5)).await;
    let after = operator.reconciles("tenant").await?;
    let steady = emulator.request_counts();
    let rss_peak = operator.peak_rss_kib()?;

    println!("tenants:                         {tenants} ({created_ok} created)");
    println!(
        "all created after:               {:.2} s",
        create_done.as_secs_f64()
    );
    println!(
        "all Ready after:                 {:.2} s",
        all_ready.as_secs_f64()
    );
    common::print_operator_cost(
        tenants,
        operator_requests,
        operator_writes,
        rss_peak,
        rss_idle,
    );
    println!(
        "steady state, {}s window:        {} reconciles, {} write requests (excluding the Lease)",
        RESYNC_SECONDS + 5,
        after - before,
        writes(&steady)
    );
    print_writes("steady-state write", &steady);

    operator.stop()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
