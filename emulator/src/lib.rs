//! An in-memory Kubernetes API server for Landlord's tests, demos and benchmarks.

pub mod auth;
pub mod rbac;
pub mod schema;
