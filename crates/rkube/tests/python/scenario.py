"""One workload scenario through the Python `kubernetes` client (from PyPI),
unmodified: a namespace, a Deployment that reaches its replicas on simulated
nodes, a scale, a watch that sees the pods, then the namespace deleted.
Prints one line per step; exits non-zero on the first failure."""
import sys
import time

from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()


def until(what, pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
print("namespace created")
dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]),
        ),
    ),
)
apps.create_namespaced_deployment("py", dep)
until("2 available replicas", lambda: (apps.read_namespaced_deployment("web", "py").status.available_replicas or 0) == 2)
print("deployment available")

apps.patch_namespaced_deployment_scale("web", "py", {"spec": {"replicas": 3}})
seen = set()
w = watch.Watch()
for ev in w.stream(core.list_namespaced_pod, "py", label_selector="app=web", timeout_seconds=30):
    pod = ev["object"]
    if pod.status.phase == "Running":
        seen.add(pod.metadata.name)
    if len(seen) >= 3:
        w.stop()
if len(seen) < 3:
    sys.exit(f"the watch saw {len(seen)} running pods")
print("watch saw 3 running pods")

pods = core.list_namespaced_pod("py", label_selector="app=web").items
assert all(p.spec.node_name.startswith("fake-node-") for p in pods), [p.spec.node_name for p in pods]
print("pods on fake nodes")

core.delete_namespace("py")
def gone():
    try:
        core.read_namespace("py")
        return False
    except client.exceptions.ApiException as e:
        return e.status == 404
until("the namespace to go", gone)
print("namespace deleted")
