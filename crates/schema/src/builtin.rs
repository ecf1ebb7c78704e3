//! The built-in resources an upstream Kubernetes 1.37 API server serves by
//! default: every GA group/version with its names, scope, verbs,
//! subresources, storage location, name rule and field selectors, as
//! upstream's discovery documents show them. Beta and alpha versions are left
//! out because upstream serves none of them unless an operator enables them.
//!
//! The table is written with a tiny builder so that each resource is one line
//! of facts; everything a line does not say takes upstream's common default
//! (all eight verbs, singular = lowercase kind, DNS-1123 subdomain names).

use crate::{NameRule, ResourceDef, Subresource};

/// The verbs of an ordinary stored resource, in discovery order.
const RW: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Namespaces cannot be deleted as a collection.
const RW_NO_COLLECTION: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
/// Virtual request/response kinds (reviews, bindings).
const CREATE: &[&str] = &["create"];
/// Component statuses are computed on read.
const READ_ONLY: &[&str] = &["get", "list"];
/// status, scale, approval, resize and ephemeralcontainers subresources.
const GPU: &[&str] = &["get", "patch", "update"];
/// Streaming subresources (attach, exec, portforward) upgrade on GET or POST.
const CONNECT: &[&str] = &["create", "get"];
/// Proxy subresources accept every HTTP method discovery can name.
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const CORE_EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
/// events.k8s.io names the same selectable fields after its own field names.
const EVENTS_FIELDS: &[&str] = &[
    "reason",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "source",
    "type",
];

/// A resource under construction; the methods each set one upstream fact.
struct Def(ResourceDef);

fn res(group_version: &str, kind: &str, plural: &str, namespaced: bool) -> Def {
    let (group, version) = group_version.split_once('/').unwrap_or(("", group_version));
    let storage = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
    Def(ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: Vec::new(),
        categories: Vec::new(),
        namespaced,
        verbs: strings(RW),
        subresources: Vec::new(),
        storage,
        virtual_only: false,
        name_rule: NameRule::Subdomain,
        field_selectors: Vec::new(),
        custom: None,
    })
}

/// A namespaced resource.
fn ns(group_version: &str, kind: &str, plural: &str) -> Def {
    res(group_version, kind, plural, true)
}

/// A cluster-scoped resource.
fn cl(group_version: &str, kind: &str, plural: &str) -> Def {
    res(group_version, kind, plural, false)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Def {
    fn short(mut self, names: &[&str]) -> Self {
        self.0.short_names = strings(names);
        self
    }

    /// In `kubectl get all`.
    fn all(mut self) -> Self {
        self.0.categories = strings(&["all"]);
        self
    }

    /// In `kubectl get api-extensions`.
    fn ext(mut self) -> Self {
        self.0.categories = strings(&["api-extensions"]);
        self
    }

    fn verbs(mut self, verbs: &[&str]) -> Self {
        self.0.verbs = strings(verbs);
        self
    }

    /// A create-only kind whose answer is computed and never stored.
    fn virtual_create(mut self) -> Self {
        self.0.verbs = strings(CREATE);
        self.0.virtual_only = true;
        self
    }

    fn sub(self, name: &str, kind: &str, verbs: &[&str]) -> Self {
        self.sub_full(name, None, kind, verbs)
    }

    /// A subresource whose kind lives in another group/version.
    fn sub_in(self, name: &str, group_version: &str, kind: &str, verbs: &[&str]) -> Self {
        self.sub_full(name, Some(group_version), kind, verbs)
    }

    fn sub_full(mut self, name: &str, group_version: Option<&str>, kind: &str, verbs: &[&str]) -> Self {
        let (group, version) = match group_version {
            Some(gv) => {
                let (g, v) = gv.split_once('/').unwrap_or(("", gv));
                (Some(g.to_string()), Some(v.to_string()))
            }
            None => (None, None),
        };
        self.0.subresources.push(Subresource { name: name.into(), kind: kind.into(), group, version, verbs: strings(verbs) });
        // Discovery lists subresources in name order.
        self.0.subresources.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    fn status(self) -> Self {
        let kind = self.0.kind.clone();
        self.sub("status", &kind, GPU)
    }

    fn scale(self) -> Self {
        self.sub_in("scale", "autoscaling/v1", "Scale", GPU)
    }

    fn names(mut self, rule: NameRule) -> Self {
        self.0.name_rule = rule;
        self
    }

    fn fields(mut self, fields: &[&str]) -> Self {
        self.0.field_selectors = strings(fields);
        self
    }

    fn storage(mut self, storage: &str) -> Self {
        self.0.storage = storage.into();
        self
    }
}

/// Every resource upstream 1.37 serves by default, core first, then the
/// groups in `group_order()` order, each version's resources in name order.
// One resource per line reads as a table; rustfmt would split every chain.
#[rustfmt::skip]
pub fn builtin() -> Vec<ResourceDef> {
    use NameRule::{Label, PathSegment};
    let v1 = "v1";
    let defs = vec![
        // core/v1
        ns(v1, "Binding", "bindings").virtual_create(),
        cl(v1, "ComponentStatus", "componentstatuses").short(&["cs"]).verbs(READ_ONLY),
        ns(v1, "ConfigMap", "configmaps").short(&["cm"]),
        ns(v1, "Endpoints", "endpoints").short(&["ep"]),
        ns(v1, "Event", "events").short(&["ev"]).fields(CORE_EVENT_FIELDS),
        ns(v1, "LimitRange", "limitranges").short(&["limits"]),
        cl(v1, "Namespace", "namespaces")
            .short(&["ns"])
            .verbs(RW_NO_COLLECTION)
            .sub("finalize", "Namespace", &["update"])
            .status()
            .names(Label)
            .fields(&["status.phase"]),
        cl(v1, "Node", "nodes")
            .short(&["no"])
            .sub("proxy", "NodeProxyOptions", PROXY)
            .status()
            .fields(&["spec.unschedulable"]),
        ns(v1, "PersistentVolumeClaim", "persistentvolumeclaims").short(&["pvc"]).status(),
        cl(v1, "PersistentVolume", "persistentvolumes").short(&["pv"]).status(),
        ns(v1, "Pod", "pods")
            .short(&["po"])
            .all()
            .sub("attach", "PodAttachOptions", CONNECT)
            .sub("binding", "Binding", CREATE)
            .sub("ephemeralcontainers", "Pod", GPU)
            .sub_in("eviction", "policy/v1", "Eviction", CREATE)
            .sub("exec", "PodExecOptions", CONNECT)
            .sub("log", "Pod", &["get"])
            .sub("portforward", "PodPortForwardOptions", CONNECT)
            .sub("proxy", "PodProxyOptions", PROXY)
            .sub("resize", "Pod", GPU)
            .status()
            .fields(POD_FIELDS),
        ns(v1, "PodTemplate", "podtemplates"),
        ns(v1, "ReplicationController", "replicationcontrollers")
            .short(&["rc"])
            .all()
            .scale()
            .status()
            .fields(&["status.replicas"]),
        ns(v1, "ResourceQuota", "resourcequotas").short(&["quota"]).status(),
        ns(v1, "Secret", "secrets").fields(&["type"]),
        ns(v1, "ServiceAccount", "serviceaccounts")
            .short(&["sa"])
            .sub_in("token", "authentication.k8s.io/v1", "TokenRequest", CREATE),
        // Upstream validates Service names as DNS-1035 labels (a letter
        // first); Label is the closest rule this crate has.
        ns(v1, "Service", "services")
            .short(&["svc"])
            .all()
            .sub("proxy", "ServiceProxyOptions", PROXY)
            .status()
            .names(Label)
            .fields(&["spec.clusterIP", "spec.type"]),
        // apiregistration.k8s.io
        cl("apiregistration.k8s.io/v1", "APIService", "apiservices").ext().status(),
        // apps
        ns("apps/v1", "ControllerRevision", "controllerrevisions"),
        ns("apps/v1", "DaemonSet", "daemonsets").short(&["ds"]).all().status(),
        ns("apps/v1", "Deployment", "deployments").short(&["deploy"]).all().scale().status(),
        ns("apps/v1", "ReplicaSet", "replicasets")
            .short(&["rs"])
            .all()
            .scale()
            .status()
            .fields(&["status.replicas"]),
        ns("apps/v1", "StatefulSet", "statefulsets").short(&["sts"]).all().scale().status(),
        // events.k8s.io: the same objects as core events, converted by
        // hooks::stored_to_served / served_to_stored.
        ns("events.k8s.io/v1", "Event", "events")
            .short(&["ev"])
            .fields(EVENTS_FIELDS)
            .storage("events"),
        // authentication.k8s.io
        cl("authentication.k8s.io/v1", "SelfSubjectReview", "selfsubjectreviews").virtual_create(),
        cl("authentication.k8s.io/v1", "TokenReview", "tokenreviews").virtual_create(),
        // authorization.k8s.io
        ns("authorization.k8s.io/v1", "LocalSubjectAccessReview", "localsubjectaccessreviews").virtual_create(),
        cl("authorization.k8s.io/v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews").virtual_create(),
        cl("authorization.k8s.io/v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews").virtual_create(),
        cl("authorization.k8s.io/v1", "SubjectAccessReview", "subjectaccessreviews").virtual_create(),
        // autoscaling: both versions are views of one stored object.
        ns("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers").short(&["hpa"]).all().status(),
        ns("autoscaling/v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers").short(&["hpa"]).all().status(),
        // batch
        ns("batch/v1", "CronJob", "cronjobs").short(&["cj"]).all().status(),
        ns("batch/v1", "Job", "jobs").all().status().fields(&["status.successful"]),
        // certificates.k8s.io
        cl("certificates.k8s.io/v1", "CertificateSigningRequest", "certificatesigningrequests")
            .short(&["csr"])
            .sub("approval", "CertificateSigningRequest", GPU)
            .status()
            // Upstream accepts any CSR name; PathSegment is the loosest rule.
            .names(PathSegment)
            .fields(&["spec.signerName"]),
        // Bundle names carry the signer name and its colons.
        cl("certificates.k8s.io/v1", "ClusterTrustBundle", "clustertrustbundles")
            .names(PathSegment)
            .fields(&["spec.signerName"]),
        ns("certificates.k8s.io/v1", "PodCertificateRequest", "podcertificaterequests")
            .status()
            .fields(&["spec.signerName", "spec.podName", "spec.nodeName"]),
        // networking.k8s.io
        // IPAddress names are IP addresses (IPv6 has colons); the exact
        // check belongs to a hook.
        cl("networking.k8s.io/v1", "IPAddress", "ipaddresses").short(&["ip"]).names(PathSegment),
        cl("networking.k8s.io/v1", "IngressClass", "ingressclasses"),
        ns("networking.k8s.io/v1", "Ingress", "ingresses").short(&["ing"]).status(),
        ns("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies").short(&["netpol"]),
        cl("networking.k8s.io/v1", "ServiceCIDR", "servicecidrs").status(),
        // policy
        ns("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets").short(&["pdb"]).status(),
        // rbac.authorization.k8s.io
        cl("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings").names(PathSegment),
        cl("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles").names(PathSegment),
        ns("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings").names(PathSegment),
        ns("rbac.authorization.k8s.io/v1", "Role", "roles").names(PathSegment),
        // storage.k8s.io
        cl("storage.k8s.io/v1", "CSIDriver", "csidrivers"),
        cl("storage.k8s.io/v1", "CSINode", "csinodes"),
        ns("storage.k8s.io/v1", "CSIStorageCapacity", "csistoragecapacities"),
        cl("storage.k8s.io/v1", "StorageClass", "storageclasses").short(&["sc"]),
        cl("storage.k8s.io/v1", "VolumeAttachment", "volumeattachments").status(),
        cl("storage.k8s.io/v1", "VolumeAttributesClass", "volumeattributesclasses").short(&["vac"]),
        // admissionregistration.k8s.io
        cl("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicy", "mutatingadmissionpolicies").ext(),
        cl("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybindings").ext(),
        cl("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations").ext(),
        cl("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies").ext().status(),
        cl("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings").ext(),
        cl("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations").ext(),
        // apiextensions.k8s.io
        cl("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions")
            .short(&["crd", "crds"])
            .ext()
            .status(),
        // scheduling.k8s.io
        cl("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses").short(&["pc"]),
        // coordination.k8s.io
        ns("coordination.k8s.io/v1", "Lease", "leases"),
        // node.k8s.io
        cl("node.k8s.io/v1", "RuntimeClass", "runtimeclasses"),
        // discovery.k8s.io
        ns("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
        // flowcontrol.apiserver.k8s.io
        cl("flowcontrol.apiserver.k8s.io/v1", "FlowSchema", "flowschemas").status(),
        cl("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration", "prioritylevelconfigurations").status(),
        // resource.k8s.io
        cl("resource.k8s.io/v1", "DeviceClass", "deviceclasses"),
        cl("resource.k8s.io/v1", "DeviceTaintRule", "devicetaintrules").status(),
        ns("resource.k8s.io/v1", "ResourceClaim", "resourceclaims").status(),
        ns("resource.k8s.io/v1", "ResourceClaimTemplate", "resourceclaimtemplates"),
        cl("resource.k8s.io/v1", "ResourceSlice", "resourceslices").fields(&["spec.nodeName", "spec.driver"]),
        // storagemigration.k8s.io
        cl("storagemigration.k8s.io/v1", "StorageVersionMigration", "storageversionmigrations").status(),
    ];
    defs.into_iter().map(|d| d.0).collect()
}

/// The API groups in the order upstream lists them under `/apis` (the order
/// of the aggregator's group priorities), each with its served versions,
/// preferred version first. The core group is served under `/api` and is not
/// in this list.
pub fn group_order() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("apiregistration.k8s.io", vec!["v1"]),
        ("apps", vec!["v1"]),
        ("events.k8s.io", vec!["v1"]),
        ("authentication.k8s.io", vec!["v1"]),
        ("authorization.k8s.io", vec!["v1"]),
        ("autoscaling", vec!["v2", "v1"]),
        ("batch", vec!["v1"]),
        ("certificates.k8s.io", vec!["v1"]),
        ("networking.k8s.io", vec!["v1"]),
        ("policy", vec!["v1"]),
        ("rbac.authorization.k8s.io", vec!["v1"]),
        ("storage.k8s.io", vec!["v1"]),
        ("admissionregistration.k8s.io", vec!["v1"]),
        ("apiextensions.k8s.io", vec!["v1"]),
        ("scheduling.k8s.io", vec!["v1"]),
        ("coordination.k8s.io", vec!["v1"]),
        ("node.k8s.io", vec!["v1"]),
        ("discovery.k8s.io", vec!["v1"]),
        ("flowcontrol.apiserver.k8s.io", vec!["v1"]),
        ("resource.k8s.io", vec!["v1"]),
        ("storagemigration.k8s.io", vec!["v1"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::any::TypeId;
    use std::collections::HashSet;

    fn find<'a>(defs: &'a [ResourceDef], group: &str, version: &str, plural: &str) -> Option<&'a ResourceDef> {
        defs.iter().find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    #[test]
    fn no_duplicate_group_version_plural() {
        let defs = builtin();
        let mut seen = HashSet::new();
        for d in &defs {
            assert!(seen.insert((d.group.clone(), d.version.clone(), d.plural.clone())), "duplicate {}/{} {}", d.group, d.version, d.plural);
        }
    }

    #[test]
    fn no_duplicate_short_names_or_subresources() {
        let defs = builtin();
        let mut short = std::collections::HashMap::new();
        for d in &defs {
            for s in &d.short_names {
                // The same short name may only be reused by another version
                // or another group's view of the same kind (events, hpa).
                if let Some(kind) = short.insert(s.clone(), d.kind.clone()) {
                    assert_eq!(kind, d.kind, "short name {s} used by two kinds");
                }
            }
            let names: HashSet<_> = d.subresources.iter().map(|s| &s.name).collect();
            assert_eq!(names.len(), d.subresources.len(), "duplicate subresource on {}", d.plural);
        }
    }

    /// Checks one k8s-openapi type against the table; returns a complaint.
    fn check<T: k8s_openapi::Resource>(defs: &[ResourceDef]) -> Option<String>
    where
        T::Scope: 'static,
    {
        let namespaced = TypeId::of::<T::Scope>() == TypeId::of::<k8s_openapi::NamespaceResourceScope>();
        let Some(d) = find(defs, T::GROUP, T::VERSION, T::URL_PATH_SEGMENT) else {
            return Some(format!("missing {}/{} {}", T::GROUP, T::VERSION, T::URL_PATH_SEGMENT));
        };
        if d.kind != T::KIND || d.namespaced != namespaced || d.api_version() != T::API_VERSION {
            return Some(format!("{} differs: kind {} vs {}, namespaced {} vs {}", T::URL_PATH_SEGMENT, d.kind, T::KIND, d.namespaced, namespaced));
        }
        None
    }

    /// Every GA (no alpha or beta version) top-level kind k8s-openapi knows
    /// for 1.37. k8s-openapi cannot enumerate its types, so the list is
    /// written out; it is the generator's list of GA kinds in v1_37.
    macro_rules! ga_kinds {
        ($($t:ty),* $(,)?) => {
            fn complaints(defs: &[ResourceDef]) -> (usize, Vec<String>) {
                let all = vec![$(check::<$t>(defs)),*];
                (all.len(), all.into_iter().flatten().collect())
            }
        };
    }

    ga_kinds!(
        k8s_openapi::api::admissionregistration::v1::MutatingAdmissionPolicy,
        k8s_openapi::api::admissionregistration::v1::MutatingAdmissionPolicyBinding,
        k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
        k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
        k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
        k8s_openapi::api::apps::v1::ControllerRevision,
        k8s_openapi::api::apps::v1::DaemonSet,
        k8s_openapi::api::apps::v1::Deployment,
        k8s_openapi::api::apps::v1::ReplicaSet,
        k8s_openapi::api::apps::v1::StatefulSet,
        k8s_openapi::api::authentication::v1::SelfSubjectReview,
        k8s_openapi::api::authentication::v1::TokenReview,
        k8s_openapi::api::authorization::v1::LocalSubjectAccessReview,
        k8s_openapi::api::authorization::v1::SelfSubjectAccessReview,
        k8s_openapi::api::authorization::v1::SelfSubjectRulesReview,
        k8s_openapi::api::authorization::v1::SubjectAccessReview,
        k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler,
        k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
        k8s_openapi::api::batch::v1::CronJob,
        k8s_openapi::api::batch::v1::Job,
        k8s_openapi::api::certificates::v1::CertificateSigningRequest,
        k8s_openapi::api::certificates::v1::ClusterTrustBundle,
        k8s_openapi::api::certificates::v1::PodCertificateRequest,
        k8s_openapi::api::coordination::v1::Lease,
        k8s_openapi::api::core::v1::Binding,
        k8s_openapi::api::core::v1::ComponentStatus,
        k8s_openapi::api::core::v1::ConfigMap,
        k8s_openapi::api::core::v1::Endpoints,
        k8s_openapi::api::core::v1::Event,
        k8s_openapi::api::core::v1::LimitRange,
        k8s_openapi::api::core::v1::Namespace,
        k8s_openapi::api::core::v1::Node,
        k8s_openapi::api::core::v1::PersistentVolume,
        k8s_openapi::api::core::v1::PersistentVolumeClaim,
        k8s_openapi::api::core::v1::Pod,
        k8s_openapi::api::core::v1::PodTemplate,
        k8s_openapi::api::core::v1::ReplicationController,
        k8s_openapi::api::core::v1::ResourceQuota,
        k8s_openapi::api::core::v1::Secret,
        k8s_openapi::api::core::v1::Service,
        k8s_openapi::api::core::v1::ServiceAccount,
        k8s_openapi::api::discovery::v1::EndpointSlice,
        k8s_openapi::api::events::v1::Event,
        k8s_openapi::api::flowcontrol::v1::FlowSchema,
        k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration,
        k8s_openapi::api::networking::v1::IPAddress,
        k8s_openapi::api::networking::v1::Ingress,
        k8s_openapi::api::networking::v1::IngressClass,
        k8s_openapi::api::networking::v1::NetworkPolicy,
        k8s_openapi::api::networking::v1::ServiceCIDR,
        k8s_openapi::api::node::v1::RuntimeClass,
        k8s_openapi::api::policy::v1::PodDisruptionBudget,
        k8s_openapi::api::rbac::v1::ClusterRole,
        k8s_openapi::api::rbac::v1::ClusterRoleBinding,
        k8s_openapi::api::rbac::v1::Role,
        k8s_openapi::api::rbac::v1::RoleBinding,
        k8s_openapi::api::resource::v1::DeviceClass,
        k8s_openapi::api::resource::v1::DeviceTaintRule,
        k8s_openapi::api::resource::v1::ResourceClaim,
        k8s_openapi::api::resource::v1::ResourceClaimTemplate,
        k8s_openapi::api::resource::v1::ResourceSlice,
        k8s_openapi::api::scheduling::v1::PriorityClass,
        k8s_openapi::api::storage::v1::CSIDriver,
        k8s_openapi::api::storage::v1::CSINode,
        k8s_openapi::api::storage::v1::CSIStorageCapacity,
        k8s_openapi::api::storage::v1::StorageClass,
        k8s_openapi::api::storage::v1::VolumeAttachment,
        k8s_openapi::api::storage::v1::VolumeAttributesClass,
        k8s_openapi::api::storagemigration::v1::StorageVersionMigration,
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
    );

    #[test]
    fn every_ga_kind_of_k8s_openapi_is_served() {
        let defs = builtin();
        let (checked, problems) = complaints(&defs);
        assert!(problems.is_empty(), "{problems:#?}");
        // Nothing is served that k8s-openapi does not know as GA.
        assert_eq!(defs.len(), checked, "builtin() has kinds beyond the GA list");
    }

    /// Subresources whose kind lives elsewhere name exactly that kind.
    fn sub_matches<T: k8s_openapi::Resource>(defs: &[ResourceDef], plural: &str, sub: &str) {
        let d = find(defs, "", "v1", plural).unwrap();
        let s = d.subresource(sub).unwrap();
        assert_eq!(s.kind, T::KIND);
        assert_eq!(s.group.as_deref(), Some(T::GROUP));
        assert_eq!(s.version.as_deref(), Some(T::VERSION));
        assert_eq!(T::URL_PATH_SEGMENT, sub);
    }

    #[test]
    fn foreign_subresource_kinds() {
        let defs = builtin();
        sub_matches::<k8s_openapi::api::policy::v1::Eviction>(&defs, "pods", "eviction");
        sub_matches::<k8s_openapi::api::authentication::v1::TokenRequest>(&defs, "serviceaccounts", "token");
        sub_matches::<k8s_openapi::api::autoscaling::v1::Scale>(&defs, "replicationcontrollers", "scale");
        for plural in ["deployments", "replicasets", "statefulsets"] {
            let s = find(&defs, "apps", "v1", plural).unwrap().subresource("scale").unwrap();
            assert_eq!((s.kind.as_str(), s.group.as_deref(), s.version.as_deref()), ("Scale", Some("autoscaling"), Some("v1")));
        }
    }

    #[test]
    fn group_order_matches_the_table() {
        let defs = builtin();
        let order = group_order();
        let mut listed = HashSet::new();
        for (group, versions) in &order {
            for v in versions {
                listed.insert((group.to_string(), v.to_string()));
                assert!(defs.iter().any(|d| d.group == *group && d.version == *v), "{group}/{v} serves nothing");
            }
        }
        for d in defs.iter().filter(|d| !d.group.is_empty()) {
            assert!(listed.contains(&(d.group.clone(), d.version.clone())), "{} not in group_order", d.api_version());
        }
        assert_eq!(order[0].0, "apiregistration.k8s.io");
        assert_eq!(order.iter().find(|g| g.0 == "autoscaling").unwrap().1, vec!["v2", "v1"]);
    }

    #[test]
    fn field_selector_values() {
        use serde_json::json;
        let defs = builtin();
        let get = |g: &str, p: &str| defs.iter().find(|d| d.group == g && d.plural == p && d.version == "v1").unwrap();
        // (resource, object, field, value upstream matches against)
        let cases = [
            (get("", "pods"), json!({"spec": {"nodeName": "n1"}}), "spec.nodeName", Some("n1")),
            (get("", "pods"), json!({}), "spec.hostNetwork", Some("false")),
            (get("", "pods"), json!({"spec": {"hostNetwork": true}}), "spec.hostNetwork", Some("true")),
            (get("", "pods"), json!({"metadata": {"name": "p"}}), "metadata.name", Some("p")),
            (get("", "pods"), json!({}), "spec.containers", None),
            (get("", "nodes"), json!({}), "spec.unschedulable", Some("false")),
            (get("", "replicationcontrollers"), json!({}), "status.replicas", Some("0")),
            (get("apps", "replicasets"), json!({"status": {"replicas": 3}}), "status.replicas", Some("3")),
            (get("batch", "jobs"), json!({"status": {"succeeded": 2}}), "status.successful", Some("2")),
            (get("batch", "jobs"), json!({}), "status.successful", Some("0")),
            (get("", "events"), json!({"source": {"component": "kubelet"}}), "source", Some("kubelet")),
            (get("", "events"), json!({"reportingController": "ctl"}), "reportingComponent", Some("ctl")),
            (get("", "events"), json!({"involvedObject": {"kind": "Pod"}}), "involvedObject.kind", Some("Pod")),
            (get("events.k8s.io", "events"), json!({"regarding": {"name": "x"}}), "regarding.name", Some("x")),
            (get("events.k8s.io", "events"), json!({"deprecatedSource": {"component": "k"}}), "source", Some("k")),
            (get("events.k8s.io", "events"), json!({}), "involvedObject.kind", None),
            (get("", "secrets"), json!({"type": "Opaque"}), "type", Some("Opaque")),
            (get("", "services"), json!({"spec": {"type": "NodePort"}}), "spec.type", Some("NodePort")),
            (get("certificates.k8s.io", "certificatesigningrequests"), json!({"spec": {"signerName": "s"}}), "spec.signerName", Some("s")),
            (get("resource.k8s.io", "resourceslices"), json!({"spec": {"driver": "d"}}), "spec.driver", Some("d")),
            (get("", "configmaps"), json!({}), "data", None),
        ];
        for (def, obj, field, want) in cases {
            assert_eq!(def.field_value(&obj, field).as_deref(), want, "{} {field}", def.plural);
            // The same value from only the parts the field reads.
            let bytes = serde_json::to_vec(&obj).unwrap();
            let parts = def.selected_parts(&bytes, [field].into_iter()).unwrap();
            assert_eq!(def.field_value(&parts, field).as_deref(), want, "{} {field} from {parts}", def.plural);
        }
    }

    /// Spot checks of upstream discovery facts that are easy to get wrong.
    #[test]
    fn discovery_facts() {
        let defs = builtin();
        let get = |g: &str, v: &str, p: &str| find(&defs, g, v, p).unwrap_or_else(|| panic!("{g}/{v} {p}"));

        let pods = get("", "v1", "pods");
        assert_eq!(pods.verbs, strings(RW));
        assert_eq!(pods.categories, vec!["all"]);
        let subs: Vec<_> = pods.subresources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(subs, ["attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy", "resize", "status"]);
        assert_eq!(pods.subresource("exec").unwrap().verbs, ["create", "get"]);
        assert_eq!(pods.subresource("log").unwrap().verbs, ["get"]);

        let ns = get("", "v1", "namespaces");
        assert!(!ns.verbs.contains(&"deletecollection".to_string()));
        assert_eq!(ns.subresource("finalize").unwrap().verbs, ["update"]);
        assert_eq!(ns.name_rule, NameRule::Label);

        assert_eq!(get("", "v1", "bindings").verbs, ["create"]);
        assert!(get("", "v1", "bindings").virtual_only);
        assert_eq!(get("", "v1", "componentstatuses").verbs, ["get", "list"]);
        let tr = get("authentication.k8s.io", "v1", "tokenreviews");
        assert!(tr.virtual_only && tr.verbs == ["create"] && !tr.namespaced);
        assert!(get("authorization.k8s.io", "v1", "localsubjectaccessreviews").namespaced);

        let v2 = get("autoscaling", "v2", "horizontalpodautoscalers");
        let v1 = get("autoscaling", "v1", "horizontalpodautoscalers");
        assert_eq!(v1.storage, "horizontalpodautoscalers.autoscaling");
        assert_eq!(v1.storage, v2.storage);
        assert_eq!(get("", "v1", "events").storage, "events");
        assert_eq!(get("events.k8s.io", "v1", "events").storage, "events", "one storage, converted");
        assert_eq!(get("apps", "v1", "deployments").storage, "deployments.apps");
        assert_eq!(get("", "v1", "pods").storage, "pods");

        assert_eq!(get("apiextensions.k8s.io", "v1", "customresourcedefinitions").short_names, ["crd", "crds"]);
        for (g, p) in [
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("apiregistration.k8s.io", "apiservices"),
            ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
            ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ] {
            assert_eq!(get(g, "v1", p).categories, ["api-extensions"], "{p}");
        }
        let all: Vec<_> = defs.iter().filter(|d| d.categories.contains(&"all".to_string())).map(|d| d.plural.as_str()).collect();
        assert_eq!(
            all,
            [
                "pods",
                "replicationcontrollers",
                "services",
                "daemonsets",
                "deployments",
                "replicasets",
                "statefulsets",
                "horizontalpodautoscalers",
                "horizontalpodautoscalers",
                "cronjobs",
                "jobs"
            ]
        );

        assert_eq!(get("rbac.authorization.k8s.io", "v1", "roles").name_rule, NameRule::PathSegment);
        assert_eq!(get("coordination.k8s.io", "v1", "leases").name_rule, NameRule::Subdomain);
        assert_eq!(get("", "v1", "services").name_rule, NameRule::Label);
        assert_eq!(get("certificates.k8s.io", "v1", "certificatesigningrequests").subresource("approval").unwrap().verbs, GPU);
        assert_eq!(get("", "v1", "endpoints").singular, "endpoints");
        assert_eq!(get("apiregistration.k8s.io", "v1", "apiservices").singular, "apiservice");
    }
}
