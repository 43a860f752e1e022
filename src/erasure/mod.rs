//! Erasure: what deleting a Tenant with `deletionPolicy: Erase` leaves behind, and how
//! anyone checks it.
//!
//! - [`jcs`]: RFC 8785 canonical JSON, the bytes a receipt's signature covers;
//! - [`signing`]: the operator's [`signing::ReceiptSigner`] (Ed25519) and the signature
//!   check any verifier runs;
//! - [`receipt`]: the internal consistency of an `ErasureReceipt` ([`receipt::check`]) and
//!   its full offline verification ([`receipt::verify`]).

pub mod jcs;
pub mod receipt;
pub mod signing;
