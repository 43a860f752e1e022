//! The controllers: one module per kind they reconcile, and the one module that writes.

pub mod apply;
