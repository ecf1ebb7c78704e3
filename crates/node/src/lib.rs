//! The node agent: registers a Node, renews its Lease and runs the pods
//! bound to it in real containers through CRI (containerd and runc, CNI
//! networking). Also simulated nodes (`fake`) for tests and scale.
//!
//! Sees the cluster only through the Kubernetes API.

mod agent;
mod bridge;
pub mod containerd;
pub mod cri;
mod events;
mod fake;
mod pod;
pub mod pressure;
mod probe;
mod serve;
mod spec;

pub use agent::{Agent, Config};
pub use fake::{FakeNodes, node_name};

/// The machine's memory: the node's capacity, and the limit of containers
/// that set none.
pub(crate) fn agent_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024
}
