//! Replicas as separate `charla serve` processes, for the tests that start, kill and restart them.
#![allow(dead_code)] // each test crate that includes this module uses a different part of it

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use charla_testing::auth::TestChannel;
use tonic::transport::Endpoint;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One replica: a `charla serve SERVICE` process on a fixed port.
pub struct Replica {
    pub service: &'static str,
    pub port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Replica {
    pub fn new(service: &'static str, env: Vec<(&str, String)>) -> Self {
        Self {
            service,
            port: free_port(),
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            child: None,
        }
    }

    pub fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_charla"))
            .args(["serve", self.service])
            .envs(self.env.iter().cloned())
            .env("CHARLA_AUTH_JWKS", charla_testing::auth::test_jwks_path())
            .env("CHARLA_AUTH_AUDIENCE", charla_testing::auth::TEST_AUDIENCE)
            .env("CHARLA_LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a replica");
        self.child = Some(child);
    }

    /// SIGKILL: no draining, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL a replica");
            child.wait().expect("reap the replica");
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn channel(url: String) -> TestChannel {
    charla_testing::auth::with_service_token(Endpoint::from_shared(url).unwrap().connect_lazy())
}

/// Waits until a replica answers health checks.
pub async fn ready(replica: &Replica) {
    for _ in 0..600 {
        let channel = Endpoint::from_shared(replica.url())
            .unwrap()
            .connect()
            .await;
        if let Ok(channel) = channel {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let check = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            if health.check(check).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} on port {} never became ready",
        replica.service, replica.port
    );
}
