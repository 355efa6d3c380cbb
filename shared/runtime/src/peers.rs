//! Channels to peer services that balance calls over every replica of the peer. A peer is named
//! by one or more comma-separated URLs; each URL's host is resolved again every few seconds, so a
//! Kubernetes headless Service (one DNS record per ready pod) gives a channel that follows the
//! pods as they come and go, instead of pinning every call to the one pod a ClusterIP connection
//! happened to reach. `https://` peers are called over TLS (see `crate::tls::PeerTls`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::tls::PeerTls;

/// How often peer host names are resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// Why a peer list can't be used.
#[derive(Debug, thiserror::Error)]
#[error("`{url}` is not a usable peer URL: {reason}")]
pub struct PeerUrlError {
    url: String,
    reason: String,
}

/// A peer: where to resolve, and how to build an endpoint for each address found.
#[derive(Debug, Clone)]
struct Peer {
    scheme: String,
    host: String,
    port: u16,
    /// Set for `https` peers: verified against the peer CA under the URL's host name, since
    /// the channel connects to the addresses the host resolves to.
    tls: Option<ClientTlsConfig>,
}

fn parse_peers(urls: &str) -> Result<Vec<Peer>, PeerUrlError> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            let bad = |reason: &str| PeerUrlError {
                url: url.to_owned(),
                reason: reason.to_owned(),
            };
            let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
            let scheme = uri.scheme_str().unwrap_or("http").to_owned();
            let host = uri.host().ok_or_else(|| bad("no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 });
            Ok(Peer {
                scheme,
                host,
                port,
                tls: None,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|peers| {
            if peers.is_empty() {
                Err(PeerUrlError {
                    url: urls.to_owned(),
                    reason: "no URL given".into(),
                })
            } else {
                Ok(peers)
            }
        })
}

/// Sets each peer's TLS from its scheme: `https` with the peer CA, `http` only while no peer CA
/// is configured (so a forgotten `s` can't quietly send plaintext).
fn with_tls(peers: &mut [Peer], tls: &PeerTls) -> Result<(), PeerUrlError> {
    for peer in peers {
        let bad = |reason: &str| PeerUrlError {
            url: format!("{}://{}:{}", peer.scheme, peer.host, peer.port),
            reason: reason.to_owned(),
        };
        match peer.scheme.as_str() {
            "https" => {
                let config = tls.for_host(&peer.host).map_err(bad)?;
                // Built once now, so a host name TLS can't verify is refused at start-up.
                Endpoint::from_static("https://localhost")
                    .tls_config(config.clone())
                    .map_err(|error| bad(&error_chain(&error)))?;
                peer.tls = Some(config);
            }
            "http" if tls.expected() => {
                return Err(bad(
                    "plaintext while CHARLA_PEER_TLS_CA is set: use https://",
                ));
            }
            "http" => {}
            _ => return Err(bad("the scheme must be http or https")),
        }
    }
    Ok(())
}

/// An error and its sources, on one line: tonic's transport errors say little on their own.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Every address the peers resolve to (with the index of the peer that named it), and whether
/// every lookup succeeded.
async fn resolve(peers: &[Peer]) -> (BTreeSet<(usize, SocketAddr)>, bool) {
    let mut found = BTreeSet::new();
    let mut complete = true;
    for (index, peer) in peers.iter().enumerate() {
        match tokio::net::lookup_host((peer.host.as_str(), peer.port)).await {
            Ok(addresses) => found.extend(addresses.map(|address| (index, address))),
            Err(error) => {
                complete = false;
                tracing::warn!(host = %peer.host, %error, "can't resolve a peer");
            }
        }
    }
    (found, complete)
}

/// A channel balancing over every address of `urls`, re-resolved until `shutdown`. Calls made
/// while no address is known wait for one (and fail with their deadline).
pub fn balanced_channel(
    urls: &str,
    connect_timeout: Duration,
    tls: &PeerTls,
    shutdown: CancellationToken,
) -> Result<Channel, PeerUrlError> {
    let mut peers = parse_peers(urls)?;
    with_tls(&mut peers, tls)?;
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    tokio::spawn(async move {
        let mut known: BTreeSet<(usize, SocketAddr)> = BTreeSet::new();
        loop {
            let (mut now, complete) = resolve(&peers).await;
            // A failed lookup is no news: keep what was known rather than drop every replica.
            if !complete {
                now.extend(known.iter().cloned());
            }
            for gone in known.difference(&now) {
                if changes.send(Change::Remove(gone.1)).await.is_err() {
                    return;
                }
            }
            for (index, address) in now.difference(&known) {
                let peer = &peers[*index];
                let Ok(endpoint) = Endpoint::from_shared(format!("{}://{address}", peer.scheme))
                else {
                    continue;
                };
                let mut endpoint = endpoint.connect_timeout(connect_timeout);
                if let Some(tls) = &peer.tls {
                    // Built once by `with_tls` already, so this can't fail in practice.
                    match endpoint.tls_config(tls.clone()) {
                        Ok(secured) => endpoint = secured,
                        Err(error) => {
                            tracing::warn!(error = %error_chain(&error), "can't secure a peer");
                            continue;
                        }
                    }
                }
                if changes
                    .send(Change::Insert(*address, endpoint))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            known = now;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RESOLVE_EVERY) => {}
            }
        }
    });
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists_name_each_host_and_port() {
        let peers =
            parse_peers("http://contact:50051, http://10.0.0.7:7000,https://[::1]").unwrap();
        let names: Vec<(String, String, u16)> = peers
            .into_iter()
            .map(|p| (p.scheme, p.host, p.port))
            .collect();
        assert_eq!(
            names,
            [
                ("http".into(), "contact".into(), 50051),
                ("http".into(), "10.0.0.7".into(), 7000),
                ("https".into(), "::1".into(), 443)
            ]
        );
        assert!(parse_peers(" , ").is_err());
        assert!(parse_peers("http://").is_err());
    }

    #[test]
    fn https_peers_need_the_peer_ca_and_plain_http_is_refused_once_it_is_set() {
        let error = with_tls(
            &mut parse_peers("https://contact:50051").unwrap(),
            &PeerTls::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("CHARLA_PEER_TLS_CA"), "{error}");

        let pki = charla_testing::tls::TestPki::new();
        let tls = crate::tls::TlsConfig {
            peer_tls_ca: Some(pki.ca.clone()),
            ..Default::default()
        }
        .peers()
        .unwrap();
        let mut peers = parse_peers("https://contact:50051,https://10.0.0.7").unwrap();
        with_tls(&mut peers, &tls).unwrap();
        assert!(peers.iter().all(|peer| peer.tls.is_some()));
        let error = with_tls(&mut parse_peers("http://contact:50051").unwrap(), &tls).unwrap_err();
        assert!(error.to_string().contains("use https://"), "{error}");
    }
}
