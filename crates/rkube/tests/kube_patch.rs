//! kube-rs drives server-side apply and strategic merge patch.

mod common;

use common::Server;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn deployment(image: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kr"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "kr"}},
            "template": {"metadata": {"labels": {"app": "kr"}}, "spec": {"containers": [{"name": "app", "image": image}, {"name": "side", "image": "busybox"}]}},
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_apply_and_strategic_patch() {
    let s = Server::start();
    let api: Api<Deployment> = Api::namespaced(s.client().await, "default");
    let pp = PatchParams::apply("kube-rs-test");
    let d = api.patch("kr", &pp, &Patch::Apply(deployment("nginx:1", 1))).await.expect("apply creates");
    assert_eq!(d.spec.replicas, Some(1));
    let mf = d.metadata.managed_fields.expect("managed fields");
    assert_eq!(mf[0].manager.as_deref(), Some("kube-rs-test"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    let d = api
        .patch(
            "kr",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})),
        )
        .await
        .expect("strategic patch");
    let cs = &d.spec.template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2, "merged by name");
    assert_eq!(cs[0].image.as_deref(), Some("nginx:2"));

    // The strategic patch's manager now owns the image: re-applying the old one conflicts.
    let err = api.patch("kr", &pp, &Patch::Apply(deployment("nginx:1", 1))).await.expect_err("conflict");
    match err {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 409, "{e:?}");
            assert!(e.message.contains("conflict") && e.message.contains("image"), "{e:?}");
        }
        other => panic!("{other}"),
    }
    let d = api.patch("kr", &pp.clone().force(), &Patch::Apply(deployment("nginx:1", 1))).await.expect("forced apply");
    assert_eq!(d.spec.template.spec.unwrap().containers[0].image.as_deref(), Some("nginx:1"));
}
