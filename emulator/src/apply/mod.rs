//! Server-side apply and `metadata.managedFields`.

pub mod schema;
