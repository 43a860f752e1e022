//! Backups: `pg_dump` of a tenant's database, compressed, encrypted to the tenant's age
//! key and streamed to object storage, on a schedule, with retention.
//!
//! - [`cli`]: `landlord backup run`, one backup from the command line;
//! - [`job`]: one backup start to finish (dump → compress → encrypt → upload →
//!   manifest), what the TenantBackup controller and `landlord backup run` both call;
//! - [`manifest`]: the object keys (always under the Tenant's UID) and the JSON manifest
//!   written beside each backup;
//! - [`pg_dump`]: running `pg_dump` as the tenant, its version, where its password goes;
//! - [`pipeline`]: the stream itself, pg_dump → zstd → age → SHA-256, in bounded memory;
//! - [`restore`]: the way back, download → size and SHA-256 checked against what the
//!   backup recorded → age → zstd → `pg_restore` in one transaction;
//! - [`schedule`] reads `spec.backup.schedule` in `spec.backup.timeZone` and decides
//!   whether a backup is due now (a missed schedule runs once, not once per missed
//!   slot), spreads tenants sharing a schedule over a window, and tells when the newest
//!   successful backup has gone stale;
//! - [`retention`] applies `spec.backup.retention` (keepLast, keepDaily, keepWeekly,
//!   keepMonthly) with the semantics of restic's `forget`, keeps the few newest Failed
//!   backups, and holds back backups whose objects are still under Object Lock.
//!
//! Schedules and retention take the clock as an argument, so every decision is a
//! function of the objects the controller observed and can be tested with explicit dates.

pub mod cli;
pub mod job;
pub mod manifest;
pub mod pg_dump;
pub mod pipeline;
pub mod restore;
pub mod retention;
pub mod schedule;
