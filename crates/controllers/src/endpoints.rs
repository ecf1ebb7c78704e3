//! Endpoints and EndpointSlices of Services (upstream's EndpointsController
//! and EndpointSliceController): for a Service with a selector, the pods it
//! selects that have an IP become its endpoints (ready or not ready), with
//! the Service's target ports resolved (by number or by container port name).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::Result;
use crate::informer::Subscription;
use crate::replicaset::{controller_ref, is_pod_ready};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

struct Ctx {
    client: Client,
}

pub async fn run(client: Client, pods: Subscription) {
    let services: Api<Service> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    tokio::spawn(watcher(services.clone(), watcher::Config::default()).default_backoff().reflect(writer).for_each(|_| async {}));
    let lookup = store.clone();
    Controller::new(services, watcher::Config::default())
        // A pod change wakes every Service of its namespace that selects it.
        .watches_shared_stream(pods.into_pods(), move |pod: Arc<Pod>| {
            let ns = pod.namespace().unwrap_or_default();
            let labels = pod.labels().clone();
            lookup
                .state()
                .iter()
                .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
                .filter(|s| selects(s, &labels))
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("endpoints: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

fn selector(s: &Service) -> Option<&BTreeMap<String, String>> {
    s.spec.as_ref().and_then(|s| s.selector.as_ref()).filter(|m| !m.is_empty())
}

fn selects(s: &Service, labels: &BTreeMap<String, String>) -> bool {
    selector(s).is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The port a Service port reaches on `pod`: a number, or a container port's name.
fn target_port(port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
        None => Some(port.port),
    }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(sel) = selector(&svc) else { return Ok(Action::await_change()) };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let labels: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut selected: Vec<Pod> = pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await?
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some_and(|ip| !ip.is_empty()))
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .collect();
    selected.sort_by_key(|p| p.name_any());
    let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let address = |p: &Pod| EndpointAddress {
        ip: p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: Some(p.name_any()),
            namespace: Some(ns.clone()),
            uid: p.uid(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let first = selected.first();
    let endpoint_ports: Vec<EndpointPort> = ports
        .iter()
        .filter_map(|sp| {
            Some(EndpointPort {
                name: sp.name.clone(),
                port: first.map_or(Some(sp.port), |p| target_port(sp, p))?,
                protocol: sp.protocol.clone(),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    let (ready, not_ready): (Vec<&Pod>, Vec<&Pod>) = selected.iter().partition(|p| is_pod_ready(p));
    let subsets = if selected.is_empty() {
        None
    } else {
        Some(vec![EndpointSubset {
            addresses: (!ready.is_empty()).then(|| ready.iter().map(|p| address(p)).collect()),
            not_ready_addresses: (!not_ready.is_empty()).then(|| not_ready.iter().map(|p| address(p)).collect()),
            ports: (!endpoint_ports.is_empty()).then(|| endpoint_ports.clone()),
        }])
    };
    let ep = Endpoints {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(ns.clone()), labels: svc.metadata.labels.clone(), ..Default::default() },
        subsets,
    };
    let pp = PatchParams::apply("endpoint-controller").force();
    let mut body = serde_json::to_value(&ep).unwrap_or_default();
    body["apiVersion"] = "v1".into();
    body["kind"] = "Endpoints".into();
    Api::<Endpoints>::namespaced(ctx.client.clone(), &ns).patch(&name, &pp, &Patch::Apply(body)).await?;

    // One slice per Service, named after it and its uid (upstream generates the suffix).
    let slice_name = format!("{name}-{}", svc.uid().unwrap_or_default().chars().take(5).collect::<String>());
    let mut slice_labels = svc.metadata.labels.clone().unwrap_or_default();
    slice_labels.insert(SERVICE_NAME.into(), name.clone());
    slice_labels.insert(MANAGED_BY.into(), "endpointslice-controller.k8s.io".into());
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(slice_labels),
            owner_references: Some(vec![controller_ref(svc.as_ref())]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(
            selected
                .iter()
                .map(|p| Endpoint {
                    addresses: vec![p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()],
                    conditions: Some(EndpointConditions { ready: Some(is_pod_ready(p)), serving: Some(is_pod_ready(p)), terminating: Some(false) }),
                    node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
                    target_ref: address(p).target_ref,
                    ..Default::default()
                })
                .collect(),
        ),
        ports: Some(
            endpoint_ports
                .iter()
                // An unnamed port is named "" in slices (clients dereference the name).
                .map(|p| k8s_openapi::api::discovery::v1::EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(p.port),
                    protocol: p.protocol.clone(),
                    app_protocol: p.app_protocol.clone(),
                })
                .collect(),
        ),
    };
    let mut body = serde_json::to_value(&slice).unwrap_or_default();
    body["apiVersion"] = "discovery.k8s.io/v1".into();
    body["kind"] = "EndpointSlice".into();
    Api::<EndpointSlice>::namespaced(ctx.client.clone(), &ns).patch(&slice_name, &pp, &Patch::Apply(body)).await?;
    Ok(Action::await_change())
}
