//! Service accounts, through the real kubectl: `kubectl create token`
//! issues tokens the server accepts back (and stops accepting once the pod
//! they are bound to is gone), TokenReview says whose a token is, pods get
//! their account's token volume unless they opt out, every namespace has the
//! cluster CA, and the issuer is discoverable over OIDC.

mod common;

use std::time::Duration;

use common::{Server, eventually, stderr};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

fn whoami(s: &Server, token: &str) -> std::process::Output {
    // Only the token: no client certificate from the admin kubeconfig.
    let url = format!("https://127.0.0.1:{}", s.port);
    s.kubectl_cmd(&["--kubeconfig=/dev/null", "--server", &url, "--insecure-skip-tls-verify", "--token", token, "auth", "whoami", "-o", "json"])
        .output()
        .unwrap()
}

#[test]
fn create_token_issues_tokens_the_server_accepts_until_their_pod_is_gone() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    s.ok(&["create", "namespace", "team"]);
    s.ok(&["-n", "team", "create", "serviceaccount", "robot"]);
    let token = s.ok(&["-n", "team", "create", "token", "robot"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let out = whoami(&s, token);
    assert!(out.status.success(), "{}", stderr(&out));
    let me: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "system:serviceaccount:team:robot", "{me:#}");
    let groups = me["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("system:serviceaccounts:team") && groups.contains("system:authenticated"), "{groups}");

    // A forged or garbled token is refused; so is one for another audience.
    let mut forged = token.to_string();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(stderr(&whoami(&s, &forged)).contains("Unauthorized"));
    let other = s.ok(&["-n", "team", "create", "token", "robot", "--audience=https://example.test"]);
    assert!(stderr(&whoami(&s, other.trim())).contains("Unauthorized"));

    // Validity: at least ten minutes; the expiry is what was asked for.
    let err = s.fails(&["-n", "team", "create", "token", "robot", "--duration=5m"]);
    assert!(err.contains("may not specify a duration less than 10 minutes"), "{err}");
    let err = s.fails(&["-n", "team", "create", "token", "nobody"]);
    assert!(err.contains(r#"serviceaccounts "nobody" not found"#), "{err}");

    // Bound to a pod: valid while the pod exists, refused once it is gone.
    s.ok(&["-n", "team", "run", "holder", "--image=busybox", "--overrides", r#"{"spec":{"serviceAccountName":"robot"}}"#]);
    let bound = s.ok(&["-n", "team", "create", "token", "robot", "--bound-object-kind=Pod", "--bound-object-name=holder", "--duration=1h"]);
    let out = whoami(&s, bound.trim());
    assert!(out.status.success(), "{}", stderr(&out));
    let err = s.fails(&["-n", "team", "create", "token", "robot", "--bound-object-kind=Pod", "--bound-object-name=ghost"]);
    assert!(err.contains(r#"pods "ghost" not found"#), "{err}");
    s.ok(&["-n", "team", "delete", "pod", "holder", "--grace-period=0", "--force"]);
    eventually("the pod-bound token is refused", T, || stderr(&whoami(&s, bound.trim())).contains("Unauthorized").then_some(()));
    // The unbound token still works; deleting the account ends it too.
    assert!(whoami(&s, token).status.success());
    s.ok(&["-n", "team", "delete", "serviceaccount", "robot"]);
    eventually("the account's token is refused", T, || stderr(&whoami(&s, token)).contains("Unauthorized").then_some(()));
}

#[test]
fn token_reviews_say_whose_a_token_is() {
    let s = Server::start();
    let token = s.ok(&["create", "token", "default", "--duration=20m"]);
    let review = |token: &str| {
        let doc = format!(r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{token}"}}}}"#);
        let out = s.ok_stdin(&["create", "-f", "-", "-o", "json"], &doc);
        serde_json::from_str::<Value>(&out).unwrap()["status"].clone()
    };
    let st = review(token.trim());
    assert_eq!(st["authenticated"], true, "{st:#}");
    assert_eq!(st["user"]["username"], "system:serviceaccount:default:default");
    let uid = s.ok(&["get", "serviceaccount", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(st["user"]["uid"], uid.as_str());
    assert!(st["user"]["extra"]["authentication.kubernetes.io/credential-id"][0].as_str().unwrap().starts_with("JTI="), "{st:#}");
    let st = review("not-a-token");
    assert!(st["authenticated"] != true && st["error"].as_str().is_some_and(|e| !e.is_empty()), "{st:#}");
}

#[test]
fn pods_mount_their_account_token_unless_they_opt_out() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    s.ok(&["run", "plain", "--image=busybox"]);
    let p = s.get_json(&["pod", "plain"]);
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["serviceAccount"], "default");
    let vol = p["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"].as_str().unwrap().starts_with("kube-api-access-")).cloned();
    let vol = vol.unwrap_or_else(|| panic!("no token volume: {p:#}"));
    let sources = vol["projected"]["sources"].to_string();
    assert!(sources.contains("serviceAccountToken") && sources.contains("kube-root-ca.crt") && sources.contains("metadata.namespace"), "{sources}");
    let mount = &p["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(mount["mountPath"], "/var/run/secrets/kubernetes.io/serviceaccount");
    assert_eq!(mount["name"], vol["name"]);
    assert_eq!(mount["readOnly"], true);

    // Opting out on the pod, or on its account.
    s.ok(&["run", "optout", "--image=busybox", "--overrides", r#"{"spec":{"automountServiceAccountToken":false}}"#]);
    assert!(s.get_json(&["pod", "optout"])["spec"].get("volumes").is_none());
    s.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: quiet}\nautomountServiceAccountToken: false\n");
    s.ok(&["run", "quiet", "--image=busybox", "--overrides", r#"{"spec":{"serviceAccountName":"quiet"}}"#]);
    assert!(s.get_json(&["pod", "quiet"])["spec"].get("volumes").is_none());

    // An account that does not exist: refused, nothing stored.
    let err = s.fails(&["run", "lost", "--image=busybox", "--overrides", r#"{"spec":{"serviceAccountName":"missing"}}"#]);
    assert!(err.contains(r#"pods "lost" is forbidden: error looking up service account default/missing: serviceaccount "missing" not found"#), "{err}");
    assert!(s.fails(&["get", "pod", "lost"]).contains("NotFound"));
}

#[test]
fn every_namespace_has_the_cluster_ca_and_the_issuer_is_discoverable() {
    let s = Server::start();
    s.ok(&["create", "namespace", "fresh"]);
    let ca = std::fs::read_to_string(s.data_dir().join("ca.crt")).unwrap();
    let get_ca = || s.kubectl(&["-n", "fresh", "get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"]);
    eventually("kube-root-ca.crt in a new namespace", T, || {
        let out = get_ca();
        (out.status.success() && String::from_utf8_lossy(&out.stdout) == ca.as_str()).then_some(())
    });
    // Deleted or edited, it comes back as it was.
    s.ok(&["-n", "fresh", "delete", "configmap", "kube-root-ca.crt"]);
    eventually("kube-root-ca.crt recreated", T, || (String::from_utf8_lossy(&get_ca().stdout) == ca.as_str()).then_some(()));
    s.ok(&["-n", "fresh", "patch", "configmap", "kube-root-ca.crt", "-p", r#"{"data":{"ca.crt":"tampered"}}"#]);
    eventually("kube-root-ca.crt restored", T, || (String::from_utf8_lossy(&get_ca().stdout) == ca.as_str()).then_some(()));

    let conf: Value = serde_json::from_str(&s.ok(&["get", "--raw", "/.well-known/openid-configuration"])).unwrap();
    assert_eq!(conf["issuer"], "https://kubernetes.default.svc.cluster.local");
    assert!(conf["jwks_uri"].as_str().unwrap().ends_with("/openid/v1/jwks"));
    let jwks: Value = serde_json::from_str(&s.ok(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!((key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()), (Some("EC"), Some("ES256"), Some("sig")), "{jwks:#}");

    // The signing key outlives a restart: tokens issued before still work.
    let token = s.ok(&["create", "token", "default"]);
    let mut s = s;
    s.restart();
    let out = whoami(&s, token.trim());
    assert!(out.status.success(), "{}", stderr(&out));
    let jwks2: Value = serde_json::from_str(&s.ok(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    assert_eq!(jwks2, jwks);
}
