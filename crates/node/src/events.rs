//! Events about pods, as the kubelet records them (core/v1, source
//! `kubelet` on this node), written in the background.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::agent::Ctx;

pub(crate) fn emit(ctx: &Arc<Ctx>, pod: &Pod, container: Option<&str>, type_: &str, reason: &str, message: String) {
    let ns = pod.namespace().unwrap_or_default();
    let t = k8s_openapi::jiff::Timestamp::now();
    let node = ctx.cfg.node_name.clone();
    let ev = json!({
        "metadata": {"name": format!("{}.{:x}", pod.name_any(), t.as_nanosecond()), "namespace": ns},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": pod.name_any(), "uid": pod.uid(),
                           "resourceVersion": pod.resource_version(), "fieldPath": container.map(|c| format!("spec.containers{{{c}}}"))},
        "reason": reason, "message": message, "type": type_,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet", "reportingInstance": node,
        "firstTimestamp": t.round(k8s_openapi::jiff::Unit::Second).unwrap_or(t).to_string(),
        "lastTimestamp": t.round(k8s_openapi::jiff::Unit::Second).unwrap_or(t).to_string(),
        "count": 1,
    });
    let Ok(ev) = serde_json::from_value::<Event>(ev) else { return };
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    tokio::spawn(async move {
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!("recording an event: {e}");
        }
    });
}
