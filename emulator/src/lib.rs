//! An in-memory Kubernetes API server for Landlord's tests, demos and benchmarks.

pub mod apply;
pub mod auth;
pub mod patch;
pub mod rbac;
pub mod schema;
