//! Runs an operation from several concurrent callers and times it: what every throughput figure
//! of the bench is made with, charla's and its floors' alike.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs `op(caller, index)` for every index below `ops`, from `callers` concurrent callers (each
/// takes the next index when its previous call is done), and returns the time it all took. The
/// first error stops the run.
pub async fn drive<F, Fut>(callers: usize, ops: usize, op: F) -> Result<Duration, String>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::<Result<(), String>>::new();
    for caller in 0..callers.max(1) {
        let (op, next) = (op.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= ops {
                    return Ok(());
                }
                op(caller, index).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("a caller failed: {e}"))??;
    }
    Ok(started.elapsed())
}

/// Operations per second of `ops` done in `took`.
pub fn per_second(ops: usize, took: Duration) -> f64 {
    ops as f64 / took.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_index_runs_once_and_an_error_stops_the_run() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        drive(4, 50, move |caller, index| {
            let record = record.clone();
            async move {
                assert!(caller < 4);
                record.lock().unwrap().push(index);
                Ok(())
            }
        })
        .await
        .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());

        let failed = drive(2, 10, |_, index| async move {
            if index == 3 {
                Err("boom".into())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(failed, Err("boom".into()));
    }
}
