//! Enclave: the runtime of an authorized operation domain for public data
//! (公共数据授权运营域). Raw data never leaves the domain; data is usable but invisible
//! (原始数据不出域、数据可用不可见).
//!
//! The data path reads as a straight line:
//! job → [`sandbox`] (wasmtime, `enclave_v1` ABI) → [`query`] (DataFusion over granted
//! datasets) → [`outputs`] (validated, canonical, kept inside the domain).
//! [`runner`] is the local developer's entry; [`datagen`] makes realistic sample tables.
#![deny(unsafe_code)]

pub mod audit;
pub mod datagen;
pub mod error;
pub mod limits;
pub mod outputs;
pub mod policy;
pub mod query;
pub mod runner;
pub mod sample;
pub mod sandbox;
pub mod store;

pub use error::{ErrorKind, JobError, Limit};
pub use limits::{EngineLimits, Limits};
pub use sandbox::{JobReport, JobSpec, Sandbox};
