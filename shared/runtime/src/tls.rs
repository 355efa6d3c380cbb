//! TLS from PEM files named in the environment: the listener's certificate, the client
//! certificates it may demand (mutual TLS), and what calls to peer services trust and present.
//! Off unless configured; every file is read and checked at start-up, so a bad one stops the
//! service with a message naming its variable instead of failing the first handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A client that has not finished its handshake by then is dropped, so half-open connections
/// can't pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings (see the README's "TLS"). Certificate and key go together; the listener then
/// speaks TLS only, and the same pair is the client certificate shown to peer services.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first) of this service; with CHARLA_TLS_KEY, the listener
    /// speaks TLS only. It is also the client certificate presented to peer services, so when
    /// peers demand one it needs both server and client auth usage (or no extended key usage).
    #[arg(long, env = "CHARLA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of CHARLA_TLS_CERT.
    #[arg(long, env = "CHARLA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): when set, every client must present a certificate signed by one of
    /// them (mutual TLS); a client without one is refused during the handshake.
    #[arg(long, env = "CHARLA_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM CA certificate(s) that peer services' certificates are verified against; required
    /// for `https://` peer URLs (CHARLA_CONTACT_URL, CHARLA_CONVERSATION_URL). A peer's
    /// certificate must name the URL's host.
    #[arg(long, env = "CHARLA_PEER_TLS_CA")]
    pub peer_tls_ca: Option<PathBuf>,
}

/// Why the TLS settings can't be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable or holds no usable PEM.
    #[error("{variable} ({}): {reason}", path.display())]
    File {
        variable: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// One of the certificate and the key is set without the other.
    #[error("{set} is set but {missing} is not: TLS needs both")]
    Half {
        set: &'static str,
        missing: &'static str,
    },
    /// Client certificates are demanded without a TLS listener to demand them.
    #[error("CHARLA_TLS_CLIENT_CA needs CHARLA_TLS_CERT and CHARLA_TLS_KEY (a TLS listener)")]
    ClientCaWithoutTls,
    /// The files parse but rustls refuses them together (say, a key of another certificate).
    #[error("{variables}: {reason}")]
    Rejected {
        variables: &'static str,
        reason: String,
    },
}

/// The rustls provider, named rather than taken from the process default, so another crate
/// switching on aws-lc-rs can't leave rustls unable to choose.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::File {
        variable,
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

fn certificates(
    variable: &'static str,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), TlsError> {
    let pem = read(variable, path)?;
    let bad = |reason: String| TlsError::File {
        variable,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(format!("not PEM certificates: {error}")))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate (`BEGIN CERTIFICATE`) in it".into()));
    }
    Ok((pem, certs))
}

/// A store of the CA certificates in `path`, each checked to be a usable trust anchor.
fn roots(variable: &'static str, path: &Path) -> Result<(Vec<u8>, RootCertStore), TlsError> {
    let (pem, certs) = certificates(variable, path)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|error| TlsError::File {
            variable,
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {error}"),
        })?;
    }
    Ok((pem, roots))
}

/// The service's certificate chain and key, as PEM (for tonic) and parsed (for rustls).
struct KeyPair {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsConfig {
    /// The certificate and key, when both are set.
    fn key_pair(&self) -> Result<Option<KeyPair>, TlsError> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(TlsError::Half {
                    set: "CHARLA_TLS_CERT",
                    missing: "CHARLA_TLS_KEY",
                });
            }
            (None, Some(_)) => {
                return Err(TlsError::Half {
                    set: "CHARLA_TLS_KEY",
                    missing: "CHARLA_TLS_CERT",
                });
            }
            (Some(cert), Some(key)) => (cert, key),
        };
        let (cert_pem, chain) = certificates("CHARLA_TLS_CERT", cert)?;
        let key_pem = read("CHARLA_TLS_KEY", key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::File {
            variable: "CHARLA_TLS_KEY",
            path: key.to_owned(),
            reason: format!("no usable PEM private key in it: {error}"),
        })?;
        Ok(Some(KeyPair {
            cert_pem,
            key_pem,
            chain,
            key: key_der,
        }))
    }

    /// What the listener needs, or `None` when TLS is off.
    pub fn server(&self) -> Result<Option<ServerTls>, TlsError> {
        let Some(pair) = self.key_pair()? else {
            if self.tls_client_ca.is_some() {
                return Err(TlsError::ClientCaWithoutTls);
            }
            return Ok(None);
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rejected {
                variables: "CHARLA_TLS_CERT",
                reason: error.to_string(),
            })?;
        let builder = match &self.tls_client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let (_, roots) = roots("CHARLA_TLS_CLIENT_CA", path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|error| TlsError::Rejected {
                            variables: "CHARLA_TLS_CLIENT_CA",
                            reason: error.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(pair.chain, pair.key)
            .map_err(|error| TlsError::Rejected {
                variables: "CHARLA_TLS_CERT and CHARLA_TLS_KEY",
                reason: error.to_string(),
            })?;
        // HTTP/2 for gRPC, and HTTP/1.1 for gRPC-Web clients that don't offer h2: the server
        // tells the two apart by the first bytes, whatever was negotiated.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }))
    }

    /// What calls to peer services trust and present.
    pub fn peers(&self) -> Result<PeerTls, TlsError> {
        let identity = match self.key_pair()? {
            None => None,
            Some(pair) => {
                // Checked here, as the listener's pair is, rather than at the first call.
                ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .and_then(|builder| {
                        builder
                            .with_root_certificates(RootCertStore::empty())
                            .with_client_auth_cert(pair.chain, pair.key)
                    })
                    .map_err(|error| TlsError::Rejected {
                        variables: "CHARLA_TLS_CERT and CHARLA_TLS_KEY",
                        reason: error.to_string(),
                    })?;
                Some(Identity::from_pem(pair.cert_pem, pair.key_pem))
            }
        };
        let ca = match &self.peer_tls_ca {
            None => None,
            Some(path) => Some(Certificate::from_pem(roots("CHARLA_PEER_TLS_CA", path)?.0)),
        };
        Ok(PeerTls { ca, identity })
    }
}

/// The listener's TLS: a handshake for each accepted connection.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The connections of `listener` that complete a handshake, until `shutdown`. Each
    /// handshake runs on its own task, so a slow or silent client delays nobody; one that fails
    /// (plaintext, no or an untrusted client certificate) is dropped and logged at debug level.
    pub fn incoming(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
        let (ready, incoming) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: the next accept may succeed.
                        tracing::warn!(%error, "can't accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // See `server::no_delay`: answers must not wait for the client's delayed ACK.
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "can't set TCP_NODELAY");
                }
                let acceptor = self.acceptor.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send(Ok(stream)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(incoming)
    }
}

/// What calls to peer services trust (CHARLA_PEER_TLS_CA) and present (the service's own
/// certificate, when it has one).
#[derive(Debug, Clone, Default)]
pub struct PeerTls {
    ca: Option<Certificate>,
    identity: Option<Identity>,
}

impl PeerTls {
    /// The client TLS settings for a peer whose certificate must name `host`; an error says
    /// why not (no CA to verify it against).
    pub fn for_host(&self, host: &str) -> Result<ClientTlsConfig, &'static str> {
        let ca = self
            .ca
            .clone()
            .ok_or("https needs CHARLA_PEER_TLS_CA, the CA that signs the peer's certificate")?;
        let config = ClientTlsConfig::new().ca_certificate(ca).domain_name(host);
        Ok(match &self.identity {
            Some(identity) => config.identity(identity.clone()),
            None => config,
        })
    }

    /// Whether peers are expected over TLS (a CA to verify them is configured).
    pub fn expected(&self) -> bool {
        self.ca.is_some()
    }
}

#[cfg(test)]
mod tests {
    use charla_testing::tls::TestPki;

    use super::*;

    /// `TestPki::service_config`, as this crate's type (the test support links its own copy).
    fn service_config(pki: &TestPki, mutual: bool) -> TlsConfig {
        TlsConfig {
            tls_cert: Some(pki.service.cert.clone()),
            tls_key: Some(pki.service.key.clone()),
            tls_client_ca: mutual.then(|| pki.ca.clone()),
            peer_tls_ca: Some(pki.ca.clone()),
        }
    }

    fn message<T: std::fmt::Debug>(result: Result<T, TlsError>) -> String {
        result.expect_err("the settings are refused").to_string()
    }

    #[test]
    fn certificates_from_the_same_ca_make_a_server_and_a_peer_client() {
        let pki = TestPki::new();
        let config = service_config(&pki, true);
        assert!(config.server().unwrap().is_some());
        let peers = config.peers().unwrap();
        assert!(peers.expected());
        assert!(peers.for_host("contact").is_ok());
    }

    #[test]
    fn tls_is_off_unless_configured() {
        let config = TlsConfig::default();
        assert!(config.server().unwrap().is_none());
        let peers = config.peers().unwrap();
        assert!(!peers.expected());
        assert!(peers.for_host("contact").is_err());
    }

    #[test]
    fn a_certificate_without_its_key_is_refused_naming_the_missing_one() {
        let pki = TestPki::new();
        let mut config = service_config(&pki, false);
        config.tls_key = None;
        let error = message(config.server());
        assert!(error.contains("CHARLA_TLS_KEY is not"), "{error}");
        config.tls_key = Some(pki.service.key.clone());
        config.tls_cert = None;
        let error = message(config.peers());
        assert!(error.contains("CHARLA_TLS_CERT is not"), "{error}");
    }

    #[test]
    fn unusable_files_are_refused_naming_their_variable() {
        let pki = TestPki::new();
        let missing = pki.dir.join("missing.pem");
        type Set = fn(&mut TlsConfig, PathBuf);
        let cases: [(&str, Set); 4] = [
            ("CHARLA_TLS_CERT", |c, p| c.tls_cert = Some(p)),
            ("CHARLA_TLS_KEY", |c, p| c.tls_key = Some(p)),
            ("CHARLA_TLS_CLIENT_CA", |c, p| c.tls_client_ca = Some(p)),
            ("CHARLA_PEER_TLS_CA", |c, p| c.peer_tls_ca = Some(p)),
        ];
        let not_pem = pki.dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        for (variable, set) in cases {
            for bad in [&missing, &not_pem] {
                let mut config = service_config(&pki, true);
                set(&mut config, bad.clone());
                let error = if variable == "CHARLA_PEER_TLS_CA" {
                    message(config.peers())
                } else {
                    message(config.server())
                };
                assert!(error.starts_with(variable), "{variable}: {error}");
                assert!(error.contains(&bad.display().to_string()), "{error}");
            }
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let pki = TestPki::new();
        let mut config = service_config(&pki, false);
        config.tls_key = Some(pki.client.key.clone());
        for error in [message(config.server()), message(config.peers())] {
            assert!(
                error.starts_with("CHARLA_TLS_CERT and CHARLA_TLS_KEY"),
                "{error}"
            );
        }
    }

    #[test]
    fn client_certificates_need_a_tls_listener() {
        let pki = TestPki::new();
        let config = TlsConfig {
            tls_client_ca: Some(pki.ca.clone()),
            ..TlsConfig::default()
        };
        assert!(message(config.server()).starts_with("CHARLA_TLS_CLIENT_CA"));
    }
}
