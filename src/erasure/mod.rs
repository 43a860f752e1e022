//! Erasure: the verified crypto-shredding workflow that runs when a Tenant with
//! `deletionPolicy: Erase` is deleted, and the signed receipt it leaves.
//!
//! - [`workflow`]: the closed set of steps, their order, and the progress recorded in
//!   status so that a crash resumes where it stopped;
//! - [`stop`]: `StopBackups`; [`objects`]: `DeleteBackups`; [`verify`]: `Verify`, every
//!   fact derived again from the world; [`receipt_step`]: `IssueReceipt`;
//! - [`crash`]: the test-only crash hook.
//!
//! `DropDatabase`, `DeleteNamespaces` and `DestroyKey` act through the controllers that
//! created what they remove ([`crate::controller::tenant_database`],
//! [`crate::controller::tenant_key`]).

pub mod crash;
pub mod jcs;
pub mod objects;
pub mod receipt;
pub mod receipt_step;
pub mod signing;
pub mod stop;
pub mod verify;
pub mod workflow;
