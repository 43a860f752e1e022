//! An in-memory Kubernetes API server for Landlord's tests, demos and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = kube_emulator::Emulator::start().await?;
//! let client = emulator.client()?;
//! # let _ = client; Ok(()) }
//! ```

pub mod admission;
pub mod apply;
pub mod auth;
pub mod builtin;
pub mod cluster;
pub mod crd;
pub mod decode;
pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
pub mod gc;
pub mod handle;
pub mod impersonation;
pub mod limits;
pub mod meta;
pub mod metrics;
pub mod namespaces;
pub mod negotiation;
pub mod openapi;
pub mod options;
pub mod patch;
pub mod policy;
pub mod protobuf;
pub mod rbac;
pub mod resources;
pub mod reviews;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;

pub use faults::{FaultAction, FaultHit, FaultId, FaultRule};
pub use handle::{Emulator, EmulatorError, EmulatorHandle, write_kubeconfig};
