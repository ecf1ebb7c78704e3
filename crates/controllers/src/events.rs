//! Events the controllers record (events.k8s.io/v1, as client-go's recorder).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

/// Records a Warning about `obj` from `controller`; failures only go to the log.
pub async fn warn<K: Resource<DynamicType = ()>>(client: &Client, obj: &K, controller: &str, reason: &str, note: &str) {
    let ns = obj.namespace().unwrap_or_default();
    let t = k8s_openapi::jiff::Timestamp::now();
    let regarding = ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        ..Default::default()
    };
    let ev = Event {
        metadata: ObjectMeta { name: Some(format!("{}.{:x}", obj.name_any(), t.as_nanosecond())), namespace: Some(ns.clone()), ..Default::default() },
        event_time: Some(MicroTime(t)),
        action: Some(reason.into()),
        reason: Some(reason.into()),
        note: Some(note.into()),
        type_: Some("Warning".into()),
        reporting_controller: Some(controller.into()),
        reporting_instance: Some(format!("{controller}-rkube")),
        regarding: Some(regarding),
        ..Default::default()
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns).create(&PostParams::default(), &ev).await {
        tracing::debug!("{controller} event: {e}");
    }
}
