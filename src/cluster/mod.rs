//! Cluster mode: the topology, and the authentication of node RPC.

pub mod auth;
pub mod topology;

pub use topology::{DriveRef, NodeSpec, Topology};
