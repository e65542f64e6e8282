//! Command-line front ends that are more than a few lines (binary only; `anyhow` lives here).

pub mod audit;
