//! Landlord: segregated, encrypted, verifiably erasable client tenants on Kubernetes.
//!
//! The crate is laid out as `DESIGN.md` describes: [`api`] holds the custom resources,
//! [`crd`] renders them as CustomResourceDefinitions, and [`operator`] is the process that
//! `landlord run` starts (health, metrics, signals). Controllers arrive in their own
//! modules as the capabilities they implement land.

pub mod api;
pub mod crd;
pub mod database;
pub mod operator;
