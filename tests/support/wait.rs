//! The one way tests wait: a deadline, not an iteration count, the same in every file.
//!
//! The deadline is generous for a loaded 2-core machine (`LANDLORD_TEST_DEADLINE_SECS`,
//! default 60 s); a test that needs it to pass is slow, not flaky, and a wait that runs
//! out fails with what it was waiting for.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long a wait may take before the test fails.
pub fn deadline() -> Duration {
    std::env::var("LANDLORD_TEST_DEADLINE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some` or [`deadline`] passes (then `None`).
pub async fn poll<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `check` returns `Some`, and returns its value; panics naming `what` after
/// [`deadline`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll(check).await {
        Some(value) => value,
        None => panic!("timed out after {:?} waiting until {what}", deadline()),
    }
}

/// Waits until `check` returns true; panics naming `what` after [`deadline`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Asserts that `check` stays true for `period` (a "never happens" assertion): polls it
/// throughout and panics naming `what` the first time it is false.
pub async fn stays<F, Fut>(what: &str, period: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(check().await, "{what} stopped holding");
        tokio::time::sleep(POLL).await;
    }
}
