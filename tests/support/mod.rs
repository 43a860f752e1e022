//! Shared test support, included by integration tests with `mod support;`. Each test
//! binary uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cluster;
pub mod control_plane;
pub mod landlord;
pub mod postgres;
pub mod s3;
pub mod wait;
