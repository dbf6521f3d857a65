//! Tessera: an erasure-coded, S3-compatible object store.
//!
//! Layers, imports pointing down: `s3` -> `object` -> `erasure`, `drive`.

pub mod admin;
pub mod checksum;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod drive;
pub mod erasure;
pub mod fuzzing;
pub mod gateway;
pub mod heap;
pub mod iam;
pub mod limits;
pub mod load;
pub mod md5lanes;
pub mod md5sum;
pub mod metrics;
pub mod node;
pub mod object;
pub mod s3;
pub mod server;
pub mod tls;
