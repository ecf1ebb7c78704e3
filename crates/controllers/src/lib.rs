//! The control loops that make workloads behave as upstream: namespace
//! lifecycle, garbage collection by owner references, ReplicaSets,
//! Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Endpoints and EndpointSlices of Services, the `default`
//! ServiceAccount and the `kube-root-ca.crt` ConfigMap of every namespace; nodes that stop renewing their lease
//! become unreachable; pods of nodes that no longer exist are collected; PodDisruptionBudgets count
//! how many pods may be disrupted; ResourceQuotas count what their namespace uses. Each loop is one file with a `reconcile`, driven by
//! kube-runtime watches (timers only where time itself is the event: job
//! deadlines, cron schedules, lease expiry), and sees the cluster only through
//! the Kubernetes API: the `kube::Client` it is given may be the in-process
//! API server or a remote one.
//!
//! Not here: scheduling (`scheduler`), running pods (`node`).

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
mod events;
pub mod gc;
pub mod informer;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod rootca;
pub mod serviceaccount;
pub mod statefulset;

use kube::Client;

/// An error of one reconcile; the loop retries it with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs every controller until the process ends. `root_ca` is the PEM of
/// the CA that clients inside the cluster should trust.
pub async fn run(client: Client, root_ca: String) {
    // Every pod is watched once, for all the loops that follow pods.
    let mut pods = informer::Pods::default();
    tokio::join!(
        rootca::run(client.clone(), root_ca),
        namespace::run(client.clone()),
        gc::run(client.clone()),
        replicaset::run(client.clone(), pods.subscribe()),
        serviceaccount::run(client.clone()),
        endpoints::run(client.clone(), pods.subscribe()),
        job::run(client.clone(), pods.subscribe()),
        cronjob::run(client.clone()),
        daemonset::run(client.clone(), pods.subscribe()),
        statefulset::run(client.clone(), pods.subscribe()),
        nodelifecycle::run(client.clone(), pods.subscribe()),
        podgc::run(client.clone(), pods.subscribe()),
        disruption::run(client.clone(), pods.subscribe()),
        resourcequota::run(client.clone(), pods.subscribe()),
        deployment::run(client.clone()),
        pods.run(client),
    );
}

/// Whether a namespace takes new objects (neither deleted nor Terminating).
pub(crate) fn namespace_active(ns: &k8s_openapi::api::core::v1::Namespace) -> bool {
    ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating") && ns.metadata.deletion_timestamp.is_none()
}

/// The current time as Kubernetes writes it.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
}
