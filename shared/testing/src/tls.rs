//! Certificates made at test time, so nothing secret is checked in: a CA, a certificate for the
//! services (localhost and 127.0.0.1, usable as server and as client, as a service mesh issues
//! them), a client certificate from the same CA and one from a CA nobody trusts, written as PEM
//! files in a folder of their own.

use std::net::SocketAddr;
use std::path::PathBuf;

use charla_runtime::tls::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use uuid::Uuid;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct PemPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PemPair {
    /// The pair as a tonic identity, to present as a client.
    pub fn identity(&self) -> Identity {
        let read = |path: &PathBuf| std::fs::read(path).expect("read a test PEM file");
        Identity::from_pem(read(&self.cert), read(&self.key))
    }
}

/// A CA and the certificates the tests use, in a fresh temporary folder.
#[derive(Debug)]
pub struct TestPki {
    /// The folder every file is in.
    pub dir: PathBuf,
    /// The CA certificate (PEM file) that signed `service` and `client`.
    pub ca: PathBuf,
    /// What the services present, as servers and to their peers.
    pub service: PemPair,
    /// A client certificate signed by the CA.
    pub client: PemPair,
    /// A client certificate signed by a CA the services don't trust.
    pub stranger: PemPair,
}

struct Authority {
    params: CertificateParams,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> (Self, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        (Self { params, key }, pem)
    }

    /// A certificate for `names` with `usages`, as (certificate PEM, key PEM).
    fn issue(&self, names: &[&str], usages: &[ExtendedKeyUsagePurpose]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate().expect("a key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .expect("a signed certificate");
        (cert.pem(), key.serialize_pem())
    }
}

impl TestPki {
    /// Makes the CA, the certificates and their files.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("charla-pki-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("a folder for test certificates");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write a test PEM file");
            path
        };
        let pair = |name: &str, (cert, key): (String, String)| PemPair {
            cert: write(&format!("{name}.crt"), &cert),
            key: write(&format!("{name}.key"), &key),
        };
        let (ca, ca_pem) = Authority::new("charla test CA");
        let (strange_ca, _) = Authority::new("a CA nobody trusts");
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let service = pair(
            "service",
            ca.issue(&["localhost", "127.0.0.1"], &[ServerAuth, ClientAuth]),
        );
        let client = pair("client", ca.issue(&["client"], &[ClientAuth]));
        let stranger = pair("stranger", strange_ca.issue(&["stranger"], &[ClientAuth]));
        Self {
            ca: write("ca.crt", &ca_pem),
            dir,
            service,
            client,
            stranger,
        }
    }

    /// A service's TLS settings: its certificate, peers verified against the CA, and when
    /// `mutual`, clients required to present a certificate from the CA.
    pub fn service_config(&self, mutual: bool) -> TlsConfig {
        TlsConfig {
            tls_cert: Some(self.service.cert.clone()),
            tls_key: Some(self.service.key.clone()),
            tls_client_ca: mutual.then(|| self.ca.clone()),
            peer_tls_ca: Some(self.ca.clone()),
        }
    }

    /// Client TLS that trusts the CA for `localhost`, presenting `identity` if given.
    pub fn client_tls(&self, identity: Option<&PemPair>) -> ClientTlsConfig {
        let ca = std::fs::read(&self.ca).expect("read the test CA");
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost");
        match identity {
            Some(pair) => config.identity(pair.identity()),
            None => config,
        }
    }

    /// A TLS channel to `addr`, presenting `identity` if given; the error when the server
    /// refuses it.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        identity: Option<&PemPair>,
    ) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("https://{addr}"))
            .expect("an endpoint URL")
            .tls_config(self.client_tls(identity))?
            .connect()
            .await
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
