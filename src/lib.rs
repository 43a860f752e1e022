//! Landlord: segregated, encrypted, verifiably erasable client tenants on Kubernetes.
//!
//! The crate is laid out as `DESIGN.md` describes: [`api`] holds the custom resources,
//! [`crd`] renders them as CustomResourceDefinitions, [`isolation`] builds a tenant's
//! namespaces and policies (pure), [`database`] provisions its PostgreSQL database,
//! [`controller`] reconciles, and [`operator`] is the process that `landlord run` starts
//! (health, metrics, leader election, signals); [`storage`] holds the object stores that
//! backups are written to.

pub mod api;
pub mod backup;
pub mod controller;
pub mod crd;
pub mod database;
pub mod erasure;
pub mod isolation;
pub mod keys;
pub mod operator;
pub mod storage;
