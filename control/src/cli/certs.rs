//! `l7gate certs`: a development CA for the control channel's mTLS (docker-compose, the demo,
//! tests, trying it out). Writes `ca.crt`/`ca.key` into the directory (reused when present, so
//! it can be run again to add certificates), a server certificate for `l7gate serve` and one
//! client certificate per endpoint, whose URI SAN is the SPIFFE ID `l7gate serve` authorizes.
//! Each certificate gets a directory of its own laid out as Kubernetes TLS secrets and
//! cert-manager's CSI driver lay theirs out (`tls.crt`, `tls.key`, `ca.crt`), which is what the
//! Envoy templates read (`XDS_TLS_DIR`). Production certificates come from the cluster's CA
//! (cert-manager, SPIRE): docs/xds.md.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::xds::authz::spiffe_id;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to write into (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write server/ (tls.crt, tls.key, ca.crt) for `l7gate serve --tls-cert, --tls-key,
    /// --client-ca`, valid for these DNS names and IP addresses (the names Envoys connect to),
    /// e.g. l7gate, 127.0.0.1.
    #[arg(long, value_name = "NAME")]
    server_name: Vec<String>,
    /// Write <namespace>.<name>/ (tls.crt, tls.key, ca.crt), the client certificate of the
    /// Envoys in front of endpoint namespace/name.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    endpoint: Vec<String>,
    /// The trust domain of the endpoints' SPIFFE IDs (`l7gate serve --trust-domain`).
    #[arg(long, value_name = "NAME", default_value = "cluster.local")]
    trust_domain: String,
    /// How long the certificates are valid.
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    days: u32,
    /// Write the private keys readable by everyone (0644, not 0600): for one machine's
    /// containers that run as different users and share the directory (docker-compose).
    #[arg(long)]
    readable_keys: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let validity = Validity::days(args.days)?;
    let key_mode = if args.readable_keys { 0o644 } else { 0o600 };
    let write = |path: &Path, text: &str| write(path, text, key_mode);
    let ca = ca(&args.out, &validity, &write)?;
    if !args.server_name.is_empty() {
        let mut params = leaf(&validity, "l7gate serve", ExtendedKeyUsagePurpose::ServerAuth);
        for name in &args.server_name {
            params.subject_alt_names.push(match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    name.clone().try_into().map_err(|e| format!("--server-name {name:?}: {e}"))?,
                ),
            });
        }
        write_signed(&args.out, "server", params, &ca, &write)?;
    }
    for endpoint in &args.endpoint {
        let Some((namespace, name)) = endpoint
            .split_once('/')
            .filter(|(n, e)| !n.is_empty() && !e.is_empty() && !e.contains('/'))
        else {
            return Err(format!(
                "--endpoint {endpoint:?}: give namespace/name, e.g. default/inventory-api"
            ));
        };
        let id = spiffe_id(&args.trust_domain, namespace, name);
        let mut params = leaf(&validity, endpoint, ExtendedKeyUsagePurpose::ClientAuth);
        params.subject_alt_names.push(SanType::URI(
            id.clone().try_into().map_err(|e| format!("--endpoint {endpoint:?}: {e}"))?,
        ));
        write_signed(&args.out, &format!("{namespace}.{name}"), params, &ca, &write)?;
    }
    println!("certificates in {}", args.out.display());
    Ok(())
}

struct Validity {
    from: time::OffsetDateTime,
    until: time::OffsetDateTime,
}

impl Validity {
    fn days(days: u32) -> Result<Validity, String> {
        if days == 0 {
            return Err("--days must be at least 1".into());
        }
        // A little in the past: clocks of the machines involved differ.
        let from = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        Ok(Validity { from, until: from + time::Duration::days(i64::from(days)) })
    }
}

fn leaf(validity: &Validity, name: &str, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    params.not_before = validity.from;
    params.not_after = validity.until;
    params
}

/// The CA of `dir`: read back when `ca.crt` and `ca.key` exist, else created.
struct Ca {
    /// Signs (its name and key are those of `pem`).
    cert: Certificate,
    key: KeyPair,
    /// `ca.crt` as written.
    pem: String,
}

/// Writes a file (the keys with the mode `run` chose).
type Write<'a> = dyn Fn(&Path, &str) -> Result<(), String> + 'a;

fn ca(dir: &Path, validity: &Validity, write: &Write) -> Result<Ca, String> {
    let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    let fail = |e: rcgen::Error| format!("the CA: {e}");
    if cert_path.exists() || key_path.exists() {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let key = KeyPair::from_pem(&read(&key_path)?)
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        let pem = read(&cert_path)?;
        let params = CertificateParams::from_ca_cert_pem(&pem)
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;
        // Signing needs the issuer's name and key only: this copy signs what ca.crt verifies.
        let cert = params.self_signed(&key).map_err(fail)?;
        return Ok(Ca { cert, key, pem });
    }
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "l7gate development CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = validity.from;
    params.not_after = validity.until;
    let key = KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let pem = cert.pem();
    write(&cert_path, &pem)?;
    write(&key_path, &key.serialize_pem())?;
    Ok(Ca { cert, key, pem })
}

/// Writes `dir/<stem>/`: tls.crt, tls.key and ca.crt (the CA that verifies the other side).
fn write_signed(
    dir: &Path,
    stem: &str,
    params: CertificateParams,
    ca: &Ca,
    write: &Write,
) -> Result<(), String> {
    let fail = |e: rcgen::Error| format!("{stem}: {e}");
    let key = KeyPair::generate().map_err(fail)?;
    let cert = params.signed_by(&key, &ca.cert, &ca.key).map_err(fail)?;
    let dir = dir.join(stem);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write(&dir.join("ca.crt"), &ca.pem)?;
    write(&dir.join("tls.key"), &key.serialize_pem())?;
    write(&dir.join("tls.crt"), &cert.pem())
}

/// Writes a file whole (a temporary beside it, then a rename: a watcher of the directory never
/// reads half a key); keys (`*.key`) get `key_mode`.
fn write(path: &Path, text: &str, key_mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if path.extension().is_some_and(|e| e == "key") {
        options.mode(key_mode);
    }
    std::io::Write::write_all(&mut options.open(&tmp).map_err(fail)?, text.as_bytes())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
