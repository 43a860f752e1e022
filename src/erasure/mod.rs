//! Erasure: the verified crypto-shredding workflow that runs when a Tenant with
//! `deletionPolicy: Erase` is deleted, what it leaves behind, and how anyone checks it.
//!
//! The workflow:
//! - [`workflow`]: the closed set of steps, their order, and the progress recorded in
//!   status so that a crash resumes where it stopped;
//! - [`stop`]: `StopBackups`; [`objects`]: `DeleteBackups`; [`verify`]: `Verify`, every
//!   fact derived again from the world; [`receipt_step`]: `IssueReceipt`;
//! - [`crash`]: the test-only crash hook.
//!
//! `DropDatabase`, `DeleteNamespaces` and `DestroyKey` act through the controllers that
//! created what they remove ([`crate::controller::tenant_database`],
//! [`crate::controller::tenant_key`]).
//!
//! The receipt, pure and shared by the operator and the CLI:
//! - [`jcs`]: RFC 8785 canonical JSON, the bytes a receipt's signature covers;
//! - [`signing`]: the operator's [`signing::ReceiptSigner`] (Ed25519) and the signature
//!   check any verifier runs; [`signing_key`]: where the operator keeps that key (a
//!   Secret in its namespace) and publishes its public keys (a ConfigMap), and rotation;
//! - [`receipt`]: the internal consistency of an `ErasureReceipt` ([`receipt::check`]) and
//!   its full offline verification ([`receipt::verify`]);
//! - [`document`]: a receipt as bytes, the resource or its stored copy
//!   ([`document::stored_copy_json`]), parsed strictly and verified as a third party
//!   would ([`document::parse_and_verify`]);
//! - [`cli`]: `landlord receipt verify|show|public-key`.

pub mod cli;
pub mod crash;
pub mod document;
pub mod jcs;
pub mod objects;
pub mod receipt;
pub mod receipt_step;
pub mod signing;
pub mod signing_key;
pub mod stop;
pub mod verify;
pub mod workflow;
