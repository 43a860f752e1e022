//! Backups: the pure core of scheduled backups and their retention.
//!
//! The backup pipeline itself (`pg_dump` → zstd → age → S3, the TenantBackup
//! controller) is not built yet. What is here decides *when* and *what*, without I/O:
//!
//! - [`schedule`] reads `spec.backup.schedule` in `spec.backup.timeZone` and decides
//!   whether a backup is due now (a missed schedule runs once, not once per missed
//!   slot), spreads tenants sharing a schedule over a window, and tells when the newest
//!   successful backup has gone stale;
//! - [`retention`] applies `spec.backup.retention` (keepLast, keepDaily, keepWeekly,
//!   keepMonthly) with the semantics of restic's `forget`, keeps the few newest Failed
//!   backups, and holds back backups whose objects are still under Object Lock.
//!
//! Both take the clock as an argument, so every decision is a function of the objects
//! the controller observed and can be tested with explicit dates.

pub mod retention;
pub mod schedule;
