//! The admin HTTP listener (`CHARLA_ADMIN_ADDR`, off unless set): `GET /metrics` for Prometheus.
//! Apart from the gRPC port so that it is never exposed with the API, and never needs a token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::service_metrics::ServiceMetrics;

/// The exposition's media type: prometheus-client writes OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound admin listener, not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port: see [`AdminServer::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `metrics` at `/metrics` until `shutdown` fires.
    pub async fn serve(
        self,
        metrics: Arc<ServiceMetrics>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { ([(CONTENT_TYPE, OPENMETRICS)], metrics.render().await) }
            }),
        );
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}
