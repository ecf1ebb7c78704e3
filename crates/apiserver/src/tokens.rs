//! Service account tokens: the TokenRequest subresource signs JWTs (ES256)
//! with the server's service account key, and the authenticator accepts them
//! back while the account (and the pod or secret a token is bound to) still
//! exists with the same uid, as upstream's service account token validator.
//! The public key is published for OIDC discovery (`/openid/v1/jwks`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::User;

/// Where service account tokens say they come from (kubeadm's default).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A token's validity when the request names none (upstream: one hour).
pub const DEFAULT_EXPIRATION: i64 = 3600;
/// The shortest validity a TokenRequest may ask for (upstream: ten minutes).
pub const MIN_EXPIRATION: i64 = 600;

pub struct Signer {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

/// Claims of a token the signer issued and that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub namespace: String,
    pub account: String,
    pub account_uid: String,
    /// Kind, name and uid of the object the token is bound to.
    pub bound: Option<(String, String, String)>,
    pub audiences: Vec<String>,
    pub jti: String,
    pub exp: i64,
}

impl Claims {
    pub fn user(&self) -> User {
        let ns_group = format!("system:serviceaccounts:{}", self.namespace);
        User::new(&format!("system:serviceaccount:{}:{}", self.namespace, self.account), &["system:serviceaccounts", &ns_group])
    }
}

/// The PKCS#8 document of a new P-256 signing key.
pub fn generate_key() -> Vec<u8> {
    EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("generating a P-256 key")
        .as_ref()
        .to_vec()
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Signer {
    pub fn new(pkcs8: &[u8]) -> Result<Signer, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| format!("service account key: {e}"))?;
        // The key id is a digest of the public key, as upstream derives it.
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = B64.encode(digest.as_ref());
        Ok(Signer { key, kid, rng })
    }

    /// Signs a token for `claims`, valid from now for `claims.exp - now` seconds.
    pub fn sign(&self, c: &Claims) -> String {
        let now = now_secs();
        let mut k8s = json!({
            "namespace": c.namespace,
            "serviceaccount": {"name": c.account, "uid": c.account_uid},
        });
        if let Some((kind, name, uid)) = &c.bound {
            k8s[kind.to_lowercase()] = json!({"name": name, "uid": uid});
        }
        let payload = json!({
            "aud": c.audiences,
            "exp": c.exp,
            "iat": now,
            "iss": ISSUER,
            "jti": c.jti,
            "kubernetes.io": k8s,
            "nbf": now,
            "sub": format!("system:serviceaccount:{}:{}", c.namespace, c.account),
        });
        let header = json!({"alg": "ES256", "kid": self.kid});
        let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
        let sig = self.key.sign(&self.rng, signing_input.as_bytes()).expect("ECDSA signing");
        format!("{signing_input}.{}", B64.encode(sig.as_ref()))
    }

    /// The claims of a token this signer issued, if its signature, issuer,
    /// validity window and audience hold. Whether the account and bound
    /// object still exist is the caller's check.
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("not a JWT".into());
        };
        let header: Value = B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("malformed header")?;
        if header["alg"] != "ES256" {
            return Err("unsupported signing algorithm".into());
        }
        let sig = B64.decode(s).map_err(|_| "malformed signature")?;
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| "invalid signature")?;
        let v: Value = B64.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("malformed payload")?;
        if v["iss"] != ISSUER {
            return Err("wrong issuer".into());
        }
        let now = now_secs();
        // One minute of leeway for clock skew, as upstream's JWT validation.
        if v["exp"].as_i64().is_none_or(|e| e + 60 < now) {
            return Err("token has expired".into());
        }
        if v["nbf"].as_i64().is_some_and(|n| n - 60 > now) {
            return Err("token is not valid yet".into());
        }
        let aud: Vec<String> = match &v["aud"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => vec![],
        };
        if !aud.iter().any(|a| audiences.contains(a)) {
            return Err("token audiences are invalid".into());
        }
        let k = &v["kubernetes.io"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let bound = ["pod", "secret", "node"]
            .iter()
            .find(|kind| k[**kind].is_object())
            .map(|kind| (format!("{}{}", kind[..1].to_uppercase(), &kind[1..]), s(&k[*kind]["name"]), s(&k[*kind]["uid"])));
        Ok(Claims {
            namespace: s(&k["namespace"]),
            account: s(&k["serviceaccount"]["name"]),
            account_uid: s(&k["serviceaccount"]["uid"]),
            bound,
            audiences: aud,
            jti: s(&v["jti"]),
            exp: v["exp"].as_i64().unwrap_or_default(),
        })
    }

    /// The JSON Web Key Set for OIDC discovery.
    pub fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04 || x || y.
        let pt = self.key.public_key().as_ref();
        json!({"keys": [{
            "use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
            "x": B64.encode(&pt[1..33]), "y": B64.encode(&pt[33..65]),
        }]})
    }
}

/// The OIDC discovery document (`/.well-known/openid-configuration`).
pub fn openid_configuration() -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{ISSUER}/openid/v1/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

/// Where pods find their service account token, CA and namespace.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The lifetime the kubelet asks for (upstream's warn-after: one hour and 7 s).
const KUBE_API_ACCESS_EXPIRATION: i64 = 3607;

/// Upstream's ServiceAccount admission for a new pod: the account defaults
/// to `default`, and unless the pod or its account opts out, every container
/// mounts a `kube-api-access-*` projected volume (token, cluster CA,
/// namespace) at `TOKEN_MOUNT_PATH`. Containers that already mount something
/// there keep it.
pub fn mount_service_account(pod: &mut Value, account: &Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account.get("automountServiceAccountToken").and_then(Value::as_bool))
        .unwrap_or(true);
    if !automount {
        return;
    }
    let volumes = spec.get("volumes").and_then(Value::as_array);
    let existing = volumes
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with("kube-api-access-"))
        .map(str::to_string);
    let name = existing.clone().unwrap_or_else(|| format!("kube-api-access-{suffix}"));
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else { continue };
            if mounts.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH)) {
                continue;
            }
            mounts.push(json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
            needed = true;
        }
    }
    if existing.is_none() && needed {
        let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": KUBE_API_ACCESS_EXPIRATION, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}});
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(v) => v.push(volume),
            None => {
                spec.insert("volumes".into(), json!([volume]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            namespace: "ns".into(),
            account: "default".into(),
            account_uid: "u1".into(),
            bound: Some(("Pod".into(), "p".into(), "u2".into())),
            audiences: vec![ISSUER.into()],
            jti: "j".into(),
            exp,
        }
    }

    #[test]
    fn sign_and_verify() {
        let s = Signer::new(&generate_key()).unwrap();
        let c = claims(now_secs() + 600);
        let t = s.sign(&c);
        assert_eq!(s.verify(&t, &[ISSUER.into()]).unwrap(), c);
        assert_eq!(c.user().name, "system:serviceaccount:ns:default");
        assert!(c.user().groups.contains(&"system:serviceaccounts:ns".to_string()));
        // Wrong audience, expired, tampered, another key.
        assert_eq!(s.verify(&t, &["other".into()]).unwrap_err(), "token audiences are invalid");
        assert_eq!(s.verify(&s.sign(&claims(now_secs() - 120)), &[ISSUER.into()]).unwrap_err(), "token has expired");
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64.encode(r#"{"iss":"https://kubernetes.default.svc.cluster.local","aud":["x"],"exp":9999999999}"#);
        parts[1] = &forged;
        assert_eq!(s.verify(&parts.join("."), &[ISSUER.into()]).unwrap_err(), "invalid signature");
        let other = Signer::new(&generate_key()).unwrap();
        assert_eq!(other.verify(&t, &[ISSUER.into()]).unwrap_err(), "invalid signature");
        assert!(s.verify("abc", &[]).is_err());
        let jwk = &s.jwks()["keys"][0];
        assert_eq!(jwk["kid"], s.kid);
        assert_eq!(B64.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
    }

    #[test]
    fn service_account_mount() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a"},
            {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
        ], "initContainers": [{"name": "i"}]}});
        mount_service_account(&mut pod, &json!({}), "x2b4c");
        assert_eq!(pod["spec"]["volumes"][0]["name"], "kube-api-access-x2b4c");
        assert_eq!(pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"][0]["name"], "kube-api-access-x2b4c");
        assert_eq!(pod["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1);
        assert_eq!(pod["spec"]["initContainers"][0]["volumeMounts"][0]["readOnly"], true);
        // Admitting again changes nothing.
        let before = pod.clone();
        mount_service_account(&mut pod, &json!({}), "zzzzz");
        assert_eq!(pod, before);
        // Opting out: on the account, and a pod's own choice wins.
        let mut p = json!({"spec": {"containers": [{"name": "a"}]}});
        mount_service_account(&mut p, &json!({"automountServiceAccountToken": false}), "q");
        assert!(p["spec"].get("volumes").is_none());
        let mut p = json!({"spec": {"automountServiceAccountToken": true, "containers": [{"name": "a"}]}});
        mount_service_account(&mut p, &json!({"automountServiceAccountToken": false}), "q");
        assert_eq!(p["spec"]["volumes"][0]["name"], "kube-api-access-q");
    }
}
