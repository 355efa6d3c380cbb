//! Channels to peer services that balance calls over every replica of the peer. A peer is named
//! by one or more comma-separated URLs; each URL's host is resolved again every few seconds, so a
//! Kubernetes headless Service (one DNS record per ready pod) gives a channel that follows the
//! pods as they come and go, instead of pinning every call to the one pod a ClusterIP connection
//! happened to reach. Every address is health-checked each second, and only the ready ones get
//! calls. `https://` peers are called over TLS (see `crate::tls::PeerTls`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::tls::PeerTls;

/// How often peer host names are resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(5);
/// How often each address is asked whether it is ready: how long a dead replica can keep
/// receiving calls.
const PROBE_EVERY: Duration = Duration::from_secs(1);

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

/// A channel balancing over every ready address of `urls`, re-resolved and health-checked until
/// `shutdown`. Calls made while no address is known wait for one (and fail with their deadline).
pub fn balanced_channel(
    urls: &str,
    connect_timeout: Duration,
    tls: &PeerTls,
    shutdown: CancellationToken,
) -> Result<Channel, PeerUrlError> {
    let mut peers = parse_peers(urls)?;
    with_tls(&mut peers, tls)?;
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    let membership = Membership {
        peers,
        connect_timeout,
        changes,
        members: BTreeMap::new(),
    };
    tokio::spawn(membership.run(shutdown));
    Ok(channel)
}

/// One address of a peer: how to reach it, and whether the balancer has it.
struct Member {
    endpoint: Endpoint,
    /// A channel of its own, for health checks that must reach this address and no other.
    health: HealthClient<Channel>,
    balanced: bool,
}

/// Keeps a balancer's endpoints to the addresses that are there and ready: resolves the peers'
/// host names every [`RESOLVE_EVERY`] and asks each address for its health every
/// [`PROBE_EVERY`]. A replica that died, hangs or drains (NOT_SERVING) leaves the balancer at
/// the next probe, instead of failing a share of the calls until DNS forgets it; it comes back
/// once it answers SERVING again.
struct Membership {
    peers: Vec<Peer>,
    connect_timeout: Duration,
    changes: tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>,
    members: BTreeMap<(usize, SocketAddr), Member>,
}

impl Membership {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut resolved_at: Option<Instant> = None;
        loop {
            if resolved_at.is_none_or(|at| at.elapsed() >= RESOLVE_EVERY) {
                self.resolve().await;
                resolved_at = Some(Instant::now());
            }
            let ready = self.probe().await;
            if self.balance(&ready).await.is_err() {
                return; // the channel is gone
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    }

    /// Adds the addresses the peers resolve to now and drops the ones they no longer do.
    async fn resolve(&mut self) {
        let (now, complete) = resolve(&self.peers).await;
        // A failed lookup is no news: keep what was known rather than drop every replica.
        if complete {
            let gone: Vec<_> = self
                .members
                .keys()
                .filter(|key| !now.contains(key))
                .copied()
                .collect();
            for key in gone {
                if let Some(member) = self.members.remove(&key)
                    && member.balanced
                {
                    let _closed = self.changes.send(Change::Remove(key.1)).await;
                }
            }
        }
        for key in now {
            if self.members.contains_key(&key) {
                continue;
            }
            if let Some(endpoint) = self.endpoint(&key) {
                let health = HealthClient::new(endpoint.connect_lazy());
                let member = Member {
                    endpoint,
                    health,
                    balanced: false,
                };
                self.members.insert(key, member);
            }
        }
    }

    fn endpoint(&self, (index, address): &(usize, SocketAddr)) -> Option<Endpoint> {
        let peer = &self.peers[*index];
        let endpoint = Endpoint::from_shared(format!("{}://{address}", peer.scheme)).ok()?;
        let endpoint = endpoint.connect_timeout(self.connect_timeout);
        match &peer.tls {
            None => Some(endpoint),
            // Built once by `with_tls` already, so this can't fail in practice.
            Some(tls) => match endpoint.tls_config(tls.clone()) {
                Ok(secured) => Some(secured),
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "can't secure a peer");
                    None
                }
            },
        }
    }

    /// The addresses that answer SERVING now, all asked at once, each within the connect timeout.
    async fn probe(&self) -> BTreeSet<(usize, SocketAddr)> {
        let mut probes = tokio::task::JoinSet::new();
        for (key, member) in &self.members {
            let key = *key;
            let mut health = member.health.clone();
            let timeout = self.connect_timeout;
            probes.spawn(async move {
                let mut request = tonic::Request::new(HealthCheckRequest {
                    service: String::new(),
                });
                request.set_timeout(timeout);
                let answer = tokio::time::timeout(timeout, health.check(request)).await;
                let serving = matches!(
                    answer,
                    Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving
                );
                (key, serving)
            });
        }
        let mut ready = BTreeSet::new();
        while let Some(probed) = probes.join_next().await {
            if let Ok((key, true)) = probed {
                ready.insert(key);
            }
        }
        ready
    }

    /// Gives the balancer the ready addresses; when none is ready, every known one, so calls
    /// still try (and a peer whose health service misbehaves is no worse off than unchecked).
    async fn balance(&mut self, ready: &BTreeSet<(usize, SocketAddr)>) -> Result<(), ()> {
        let none_ready = ready.is_empty();
        for (key, member) in &mut self.members {
            let wanted = none_ready || ready.contains(key);
            if wanted == member.balanced {
                continue;
            }
            let change = if wanted {
                tracing::info!(peer = %key.1, "peer replica ready: calls go to it");
                Change::Insert(key.1, member.endpoint.clone())
            } else {
                tracing::warn!(peer = %key.1, "peer replica not ready: calls avoid it");
                Change::Remove(key.1)
            };
            self.changes.send(change).await.map_err(drop)?;
            member.balanced = wanted;
        }
        Ok(())
    }
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
