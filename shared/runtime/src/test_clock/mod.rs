//! The test clock: when a service is started with it, all its time comes from one manual clock
//! that an admin RPC (`TestClockService`) sets or advances, so integrators can watch auto-close and
//! "today" happen without waiting. Off by default; while off, the service is not served at all
//! (UNIMPLEMENTED, and reflection doesn't list it). Its time lives in the service's database,
//! shared by every replica (see [`fleet`]).

pub mod fleet;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::test_clock_service_server::TestClockService;
use tonic::{Request, Response, Status};

use crate::ApiError;
use crate::clock::{ManualClock, SharedClock, SystemClock, to_timestamp};
use fleet::FleetClock;

/// The clock a service runs on.
#[derive(Debug, Clone)]
pub enum ServiceClock {
    /// The machine's clock.
    System,
    /// A test clock, moved only through `TestClockService`.
    Test(ManualClock),
}

impl ServiceClock {
    /// A test clock starting at the machine's current time.
    pub fn test_from_now() -> Self {
        Self::Test(ManualClock::new(SystemTime::now()))
    }

    /// The clock services read time from.
    pub fn shared(&self) -> SharedClock {
        match self {
            Self::System => Arc::new(SystemClock),
            Self::Test(clock) => Arc::new(clock.clone()),
        }
    }
}

/// Work a service must finish after the test clock moves, before the call returns (the
/// conversation service closes what auto-close made due).
pub type AfterMove = Arc<
    dyn Fn(SystemTime) -> Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send>> + Send + Sync,
>;

/// The `TestClockService` handlers, over a test clock (a server on the system clock doesn't
/// serve them).
#[derive(Clone)]
pub struct TestClockApi {
    clock: FleetClock,
    after_move: Option<AfterMove>,
}

impl TestClockApi {
    /// Handlers over `clock`, running `after_move` after each move.
    pub fn new(clock: FleetClock, after_move: Option<AfterMove>) -> Self {
        Self { clock, after_move }
    }

    /// The test clock, for a caller with a service token.
    fn test_clock<T>(&self, request: &Request<T>) -> Result<&FleetClock, ApiError> {
        crate::auth::authorize_service(request)?;
        Ok(&self.clock)
    }

    async fn moved(&self, now: SystemTime) -> Result<SystemTime, ApiError> {
        if let Some(after_move) = &self.after_move {
            after_move(now).await?;
        }
        Ok(now)
    }
}

#[tonic::async_trait]
impl TestClockService for TestClockApi {
    async fn get_test_clock(
        &self,
        request: Request<pb::GetTestClockRequest>,
    ) -> Result<Response<pb::GetTestClockResponse>, Status> {
        let clock = self.test_clock(&request)?;
        clock.refresh().await.map_err(ApiError::from)?;
        let now = crate::clock::Clock::now(clock.local());
        Ok(Response::new(pb::GetTestClockResponse {
            now: Some(to_timestamp(now)),
        }))
    }

    async fn set_test_clock(
        &self,
        request: Request<pb::SetTestClockRequest>,
    ) -> Result<Response<pb::SetTestClockResponse>, Status> {
        let clock = self.test_clock(&request)?;
        let time = request
            .get_ref()
            .time
            .ok_or_else(|| ApiError::invalid("time", "is required"))?;
        let time = crate::clock::parse_timestamp("time", &time)?;
        let now = self.moved(clock.set(time).await?).await?;
        Ok(Response::new(pb::SetTestClockResponse {
            now: Some(to_timestamp(now)),
        }))
    }

    async fn advance_test_clock(
        &self,
        request: Request<pb::AdvanceTestClockRequest>,
    ) -> Result<Response<pb::AdvanceTestClockResponse>, Status> {
        let clock = self.test_clock(&request)?;
        let by = request
            .get_ref()
            .duration
            .ok_or_else(|| ApiError::invalid("duration", "is required"))?;
        let by = crate::clock::parse_duration("duration", &by)?;
        let now = self.moved(clock.advance(by).await?).await?;
        Ok(Response::new(pb::AdvanceTestClockResponse {
            now: Some(to_timestamp(now)),
        }))
    }
}
