//! Certificates and the admin kubeconfig. On first start the server makes a CA,
//! a serving certificate for every name it may be reached by, and an admin
//! client certificate (group `system:masters`) and the key that signs service
//! account tokens; later starts reuse them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub struct Pki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub kubeconfig: PathBuf,
    /// PKCS#8 of the P-256 key that signs service account tokens.
    pub service_account_key: Vec<u8>,
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * years);
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Loads the CA from `dir`, or creates it.
fn ca(dir: &Path) -> Result<(String, KeyPair)> {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if crt.exists() && key.exists() {
        let kp = KeyPair::from_pem(&fs::read_to_string(&key)?).context("reading ca.key")?;
        return Ok((fs::read_to_string(&crt)?, kp));
    }
    let kp = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, "rkube-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut p, 10);
    let cert = p.self_signed(&kp)?;
    write_private(&key, &kp.serialize_pem())?;
    write_private(&crt, &cert.pem())?;
    Ok((cert.pem(), kp))
}

/// Issues a leaf certificate signed by the CA.
fn leaf(ca_pem: &str, ca_key: &KeyPair, cn: &str, orgs: &[&str], sans: &[String], server: bool) -> Result<(String, String)> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    let kp = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = DistinguishedName::new();
    for o in orgs {
        p.distinguished_name.push(DnType::OrganizationName, *o);
    }
    p.distinguished_name.push(DnType::CommonName, cn);
    for s in sans {
        p.subject_alt_names.push(match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.clone().try_into()?),
        });
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
    validity(&mut p, 5);
    let cert = p.signed_by(&kp, &issuer)?;
    Ok((cert.pem(), kp.serialize_pem()))
}

/// Loads or creates every certificate and writes the admin kubeconfig for `server_url`.
pub fn ensure(dir: &Path, server_url: &str, extra_sans: &[String]) -> Result<Pki> {
    fs::create_dir_all(dir)?;
    let (ca_pem, ca_key) = ca(dir)?;
    let (scrt, skey) = (dir.join("server.crt"), dir.join("server.key"));
    let (server_cert_pem, server_key_pem) = if scrt.exists() && skey.exists() {
        (fs::read_to_string(&scrt)?, fs::read_to_string(&skey)?)
    } else {
        let mut sans: Vec<String> =
            ["localhost", "127.0.0.1", "::1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        if let Ok(h) = fs::read_to_string("/etc/hostname") {
            sans.push(h.trim().to_string());
        }
        sans.extend(extra_sans.iter().cloned());
        sans.retain(|s| !s.is_empty());
        sans.dedup();
        let (c, k) = leaf(&ca_pem, &ca_key, "rkube-apiserver", &[], &sans, true)?;
        write_private(&skey, &k)?;
        write_private(&scrt, &c)?;
        (c, k)
    };
    let (acrt, akey) = (dir.join("admin.crt"), dir.join("admin.key"));
    let (admin_cert, admin_key) = if acrt.exists() && akey.exists() {
        (fs::read_to_string(&acrt)?, fs::read_to_string(&akey)?)
    } else {
        let (c, k) = leaf(&ca_pem, &ca_key, "admin", &["system:masters"], &[], false)?;
        write_private(&akey, &k)?;
        write_private(&acrt, &c)?;
        (c, k)
    };
    let kubeconfig = dir.join("admin.kubeconfig");
    write_private(&kubeconfig, &render_kubeconfig(server_url, &ca_pem, &admin_cert, &admin_key))?;
    let sa = dir.join("service-account.key");
    let sa_key = if sa.exists() {
        KeyPair::from_pem(&fs::read_to_string(&sa)?).context("reading service-account.key")?
    } else {
        let kp = KeyPair::generate()?;
        write_private(&sa, &kp.serialize_pem())?;
        kp
    };
    Ok(Pki { ca_pem, server_cert_pem, server_key_pem, kubeconfig, service_account_key: sa_key.serialize_der() })
}

fn render_kubeconfig(server: &str, ca: &str, cert: &str, key: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rkube", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "rkube", "context": {"cluster": "rkube", "user": "admin", "namespace": "default"}}],
        "current-context": "rkube",
        "preferences": {},
    });
    serde_yaml::to_string(&doc).expect("kubeconfig serialises")
}
