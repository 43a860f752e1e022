//! Erasure: what deleting a Tenant with `deletionPolicy: Erase` leaves behind, and how
//! anyone checks it.
//!
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
pub mod document;
pub mod jcs;
pub mod receipt;
pub mod signing;
pub mod signing_key;
