//! Backups: `pg_dump` of a tenant's database, compressed, encrypted to the tenant's age
//! key and streamed to object storage.
//!
//! - [`pg_dump`]: running `pg_dump` as the tenant, its version, where its password goes;
//! - [`pipeline`]: the stream itself, pg_dump → zstd → age → SHA-256, in bounded memory.

pub mod pg_dump;
pub mod pipeline;
