//! Channels to peer services that balance calls over every replica of the peer. A peer is named
//! by one or more comma-separated URLs; each URL's host is resolved again every few seconds, so a
//! Kubernetes headless Service (one DNS record per ready pod) gives a channel that follows the
//! pods as they come and go, instead of pinning every call to the one pod a ClusterIP connection
//! happened to reach.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

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
            Ok(Peer { scheme, host, port })
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

/// Every address the peers resolve to, and whether every lookup succeeded.
async fn resolve(peers: &[Peer]) -> (BTreeSet<(String, SocketAddr)>, bool) {
    let mut found = BTreeSet::new();
    let mut complete = true;
    for peer in peers {
        match tokio::net::lookup_host((peer.host.as_str(), peer.port)).await {
            Ok(addresses) => found.extend(addresses.map(|address| (peer.scheme.clone(), address))),
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
    shutdown: CancellationToken,
) -> Result<Channel, PeerUrlError> {
    let peers = parse_peers(urls)?;
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    tokio::spawn(async move {
        let mut known: BTreeSet<(String, SocketAddr)> = BTreeSet::new();
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
            for (scheme, address) in now.difference(&known) {
                let Ok(endpoint) = Endpoint::from_shared(format!("{scheme}://{address}")) else {
                    continue;
                };
                let endpoint = endpoint.connect_timeout(connect_timeout);
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
}
