//! A test-only crash hook: with `LANDLORD_TEST_CRASH_AT=<Step>:<point>` (e.g.
//! `DeleteBackups:inside`), a debug build of the operator aborts at once when the erasure
//! reaches that point, as a SIGKILL would stop it: no cleanup, nothing flushed. The crash
//! tests use it to stop the operator at every step boundary and inside steps. Release
//! builds have no hook: [`point`] is empty there.

use crate::api::ErasureStep;

/// The environment variable naming the crash point.
pub const CRASH_AT: &str = "LANDLORD_TEST_CRASH_AT";

/// Where in a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Recorded Running, nothing done yet.
    Started,
    /// Part of the work done.
    Inside,
    /// The work done, not yet recorded Done.
    Finished,
}

impl Point {
    /// Its name in [`CRASH_AT`].
    pub fn as_str(self) -> &'static str {
        match self {
            Point::Started => "started",
            Point::Inside => "inside",
            Point::Finished => "finished",
        }
    }
}

/// Aborts the process if [`CRASH_AT`] names this point (debug builds only).
#[cfg(debug_assertions)]
pub fn point(step: ErasureStep, at: Point) {
    if let Ok(wanted) = std::env::var(CRASH_AT)
        && wanted == format!("{}:{}", step.as_str(), at.as_str())
    {
        eprintln!("{CRASH_AT}={wanted}: aborting");
        std::process::abort();
    }
}

/// Release builds: no hook.
#[cfg(not(debug_assertions))]
pub fn point(_step: ErasureStep, _at: Point) {}
