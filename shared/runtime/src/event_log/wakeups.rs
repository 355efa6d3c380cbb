//! Which streams wait for which commits. A commit wakes only the streams that may have something
//! new to read: the unscoped streams of its partition and the streams scoped to its workspace. An
//! idle stream scoped to another workspace costs the commit a hash lookup, not a database read.
//! A woken stream learns which of its feeds were named, and reads only those: a consumer of every
//! partition reads the one partition a write went to, not all of them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::workspace::WorkspaceId;

/// What a stream reads, and so which commits concern it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Feed {
    /// Every workspace's events in a partition, by partition sequence.
    Partition(u32),
    /// One workspace's events, by workspace sequence.
    Workspace(WorkspaceId),
}

/// The waiting streams of one event log.
#[derive(Debug, Default)]
pub(super) struct Wakeups {
    waiting: Mutex<Waiting>,
    woken: AtomicU64,
}

type Waiters = HashMap<u64, Arc<Waiter>>;

/// One stream's wake-ups: the feeds named since it last looked, and its signal.
#[derive(Debug, Default)]
struct Waiter {
    woken_feeds: Mutex<HashSet<Feed>>,
    notify: Notify,
}

impl Waiter {
    fn wake(&self, feed: Feed) {
        lock(&self.woken_feeds).insert(feed);
        self.notify.notify_one();
    }
}

/// Every critical section here only edits maps and sets: a panic elsewhere leaves them
/// consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
struct Waiting {
    next_id: u64,
    by_feed: HashMap<Feed, Waiters>,
}

impl Wakeups {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        lock(&self.waiting)
    }

    /// Registers a stream that reads `feeds`, until the subscription is dropped.
    pub(super) fn subscribe(self: &Arc<Self>, feeds: &[Feed]) -> Subscription {
        let waiter = Arc::new(Waiter::default());
        let mut waiting = self.waiting();
        let id = waiting.next_id;
        waiting.next_id += 1;
        for feed in feeds {
            waiting
                .by_feed
                .entry(*feed)
                .or_default()
                .insert(id, waiter.clone());
        }
        Subscription {
            wakeups: self.clone(),
            id,
            feeds: feeds.to_vec(),
            waiter,
        }
    }

    /// Wakes the streams a commit to `workspace`, in `partition`, concerns.
    pub(super) fn wake(&self, partition: u32, workspace: WorkspaceId) {
        let waiting = self.waiting();
        let concerned = [Feed::Partition(partition), Feed::Workspace(workspace)];
        let mut woken = 0;
        for feed in concerned {
            for waiter in waiting
                .by_feed
                .get(&feed)
                .into_iter()
                .flat_map(|w| w.values())
            {
                waiter.wake(feed);
                woken += 1;
            }
        }
        self.woken.fetch_add(woken, Ordering::Relaxed);
    }

    /// Wakes every stream: when what was committed is not known.
    pub(super) fn wake_all(&self) {
        let waiting = self.waiting();
        let mut woken = 0;
        for (feed, waiters) in &waiting.by_feed {
            for waiter in waiters.values() {
                waiter.wake(*feed);
                woken += 1;
            }
        }
        self.woken.fetch_add(woken, Ordering::Relaxed);
    }

    /// How many wake-ups have been sent to streams so far.
    pub(super) fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }
}

/// A stream's place among the waiting ones; dropping it takes the stream off.
#[derive(Debug)]
pub(super) struct Subscription {
    wakeups: Arc<Wakeups>,
    id: u64,
    feeds: Vec<Feed>,
    waiter: Arc<Waiter>,
}

impl Subscription {
    /// Resolves at the next wake-up, or at once if one came since the last: a commit that lands
    /// while the stream reads is not missed.
    pub(super) async fn woken(&self) {
        self.waiter.notify.notified().await;
    }

    /// The feeds named by the wake-ups since the last call, emptied. Take them before reading
    /// them: a commit during the read names its feed again, for the next read.
    pub(super) fn take_woken_feeds(&self) -> HashSet<Feed> {
        std::mem::take(&mut *lock(&self.waiter.woken_feeds))
    }

    /// A number that tells this stream from the others (for spreading their polls).
    pub(super) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiting = self.wakeups.waiting();
        for feed in &self.feeds {
            if let Some(waiters) = waiting.by_feed.get_mut(feed) {
                waiters.remove(&self.id);
                if waiters.is_empty() {
                    waiting.by_feed.remove(feed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn workspace() -> WorkspaceId {
        WorkspaceId::new(Uuid::now_v7())
    }

    #[tokio::test]
    async fn a_commit_wakes_its_partition_and_its_workspace_only() {
        let wakeups = Arc::new(Wakeups::default());
        let (mine, other) = (workspace(), workspace());
        let unscoped = wakeups.subscribe(&[Feed::Partition(0), Feed::Partition(1)]);
        let scoped = wakeups.subscribe(&[Feed::Workspace(mine)]);
        let elsewhere = wakeups.subscribe(&[Feed::Workspace(other)]);

        wakeups.wake(1, mine);
        assert_eq!(wakeups.woken(), 2);
        unscoped.woken().await;
        scoped.woken().await;
        assert_eq!(
            unscoped.take_woken_feeds(),
            HashSet::from([Feed::Partition(1)]),
            "the unscoped stream learns which of its partitions to read"
        );
        assert!(unscoped.take_woken_feeds().is_empty(), "taken once");
        assert_eq!(
            scoped.take_woken_feeds(),
            HashSet::from([Feed::Workspace(mine)])
        );
        let idle = tokio::time::timeout(std::time::Duration::from_millis(50), elsewhere.woken());
        assert!(idle.await.is_err(), "another workspace's stream sleeps on");

        drop(scoped);
        wakeups.wake(1, mine);
        assert_eq!(wakeups.woken(), 3, "a dropped stream is no longer woken");
        assert!(
            !wakeups
                .waiting()
                .by_feed
                .contains_key(&Feed::Workspace(mine)),
            "nothing is left behind"
        );
    }

    #[tokio::test]
    async fn waking_every_stream_names_all_of_its_feeds() {
        let wakeups = Arc::new(Wakeups::default());
        let unscoped = wakeups.subscribe(&[Feed::Partition(0), Feed::Partition(1)]);
        wakeups.wake(0, workspace());
        wakeups.wake_all();
        unscoped.woken().await;
        assert_eq!(
            unscoped.take_woken_feeds(),
            HashSet::from([Feed::Partition(0), Feed::Partition(1)])
        );
    }
}
