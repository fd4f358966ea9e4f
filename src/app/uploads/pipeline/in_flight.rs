//! The parts of one request on their way to storage, oldest first.
//!
//! Parts are recorded strictly in order, but they are sent concurrently and finish in any
//! order. What limits sending is the parts *still being sent*: a part that is stored but
//! waits for an older, slower one to be recorded holds no bytes (its task has dropped them),
//! so it must not take a slot. Counting it did: one slow part (S3 servers have them: 1.2 s
//! against 0.25 s for most 8 MiB parts on SeaweedFS) stopped every part behind it, and the
//! pipe ran with nothing in flight for a quarter of an upload.
//!
//! Across uploads, every part, from its first byte until it is stored, comes out of one
//! [`PartBudget`] per instance, so memory stays bounded however many uploads run at once.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// One part: its task, the offset it ends at and the digest state there.
pub struct Sending<T> {
    pub task: JoinHandle<T>,
    pub end: u64,
    pub digest: Vec<u8>,
}

pub struct InFlight<T> {
    parts: VecDeque<Sending<T>>,
    /// Signalled whenever a part task ends.
    ended: Arc<Notify>,
}

/// Wakes the writer when a part task ends, however it ends (also aborted or panicking).
struct SignalOnDrop(Arc<Notify>);

impl Drop for SignalOnDrop {
    fn drop(&mut self) {
        // Stores a wake-up when nobody waits yet, so a task that ends before the writer
        // starts waiting is never missed.
        self.0.notify_one();
    }
}

impl<T: Send + 'static> InFlight<T> {
    pub fn new() -> Self {
        Self {
            parts: VecDeque::new(),
            ended: Arc::new(Notify::new()),
        }
    }

    /// Starts sending a part that ends at `end`, with the digest state there. `room` (its
    /// share of the budget) is given back when the task ends, with the part's bytes.
    pub fn spawn(
        &mut self,
        end: u64,
        digest: Vec<u8>,
        room: Option<OwnedSemaphorePermit>,
        send: impl Future<Output = T> + Send + 'static,
    ) {
        let signal = SignalOnDrop(self.ended.clone());
        let counted = crate::infra::metrics::PartInFlight::start();
        let task = tokio::spawn(async move {
            let _signal = signal;
            let _room = room;
            let _counted = counted;
            send.await
        });
        self.parts.push_back(Sending { task, end, digest });
    }

    /// Parts whose bytes are still being sent.
    pub fn sending(&self) -> usize {
        self.parts.iter().filter(|p| !p.task.is_finished()).count()
    }

    pub fn oldest_finished(&self) -> bool {
        self.parts.front().is_some_and(|p| p.task.is_finished())
    }

    pub fn pop_oldest(&mut self) -> Option<Sending<T>> {
        self.parts.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Returns once some part task has ended since the last call (at once if one already
    /// did). May also return when nothing new ended; callers check again.
    pub async fn one_ended(&self) {
        self.ended.notified().await;
    }

    /// Stops every part still being sent; none of them was recorded.
    pub fn abort_all(&mut self) {
        for part in self.parts.drain(..) {
            part.task.abort();
        }
    }
}

/// Longest wait for a share of the [`PartBudget`]. Under honest load a share comes back
/// with every part stored (a few per second), so even 50 uploads at once wait seconds.
pub const FILL_WAIT: Duration = Duration::from_secs(15);

/// Memory for parts, shared by every upload of the instance: a writer takes a part's share
/// before it fills the part, and the share goes with the part until it is stored. Counted
/// in KiB; waiting writers are served first come, first served. A writer waits for a share
/// holding none, and a part being sent never waits, so shares always come back.
///
/// A part is filled at its client's pace, so a client that sends slowly holds its share
/// for as long as it keeps sending. Waiting is therefore bounded ([`FILL_WAIT`]): past it
/// the part goes ahead outside the budget (counted in
/// `medport_part_buffer_overdrafts_total`), and slow clients cost memory, as they did
/// before parts being filled were counted, instead of stopping everyone else's uploads.
#[derive(Clone)]
pub struct PartBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl PartBudget {
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Room to fill a part of `len` bytes, waiting at most [`FILL_WAIT`] while other parts
    /// use the budget; `None` for an empty part and past the wait. A part larger than the
    /// whole budget takes all of it.
    pub async fn reserve_to_fill(&self, len: u64) -> Option<OwnedSemaphorePermit> {
        if len == 0 {
            return None;
        }
        let kib = u32::try_from(len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        let share = self.kib.clone().acquire_many_owned(kib);
        match tokio::time::timeout(FILL_WAIT, share).await {
            // Only a closed semaphore fails, and this one is never closed.
            Ok(share) => share.ok(),
            Err(_) => {
                crate::infra::metrics::metrics()
                    .part_budget_overdrafts
                    .inc();
                None
            }
        }
    }

    /// KiB free right now (for tests and diagnostics).
    pub fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }

    /// The whole budget and the part of it in use, in bytes.
    pub fn usage_bytes(&self) -> (u64, u64) {
        let total = u64::from(self.total_kib);
        let free = self.available_kib() as u64;
        (total * 1024, total.saturating_sub(free) * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn a_slow_oldest_part_leaves_its_slot_count_to_the_parts_still_sending() {
        let mut pipe = InFlight::new();
        let (release, held) = oneshot::channel::<()>();
        pipe.spawn(1, vec![], None, async move {
            let _ = held.await;
            1
        });
        for n in 2..=4 {
            pipe.spawn(n, vec![], None, async move { n });
        }
        // The three quick parts end; only the oldest is still sending.
        tokio::time::timeout(Duration::from_secs(5), async {
            while pipe.sending() > 1 {
                pipe.one_ended().await;
            }
        })
        .await
        .expect("the quick parts ended");
        assert_eq!(pipe.sending(), 1);
        assert!(!pipe.oldest_finished(), "the slow part is still on its way");
        // They are still recorded in order: the oldest comes out first.
        release.send(()).expect("the slow part waits");
        let oldest = pipe.pop_oldest().expect("a part");
        assert_eq!(oldest.end, 1);
        assert_eq!(oldest.task.await.expect("the task ran"), 1);
        let ends: Vec<u64> = std::iter::from_fn(|| pipe.pop_oldest().map(|p| p.end)).collect();
        assert_eq!(ends, [2, 3, 4]);
    }

    #[tokio::test]
    async fn a_part_that_ended_before_the_wait_still_wakes_it() {
        let mut pipe = InFlight::new();
        pipe.spawn(1, vec![], None, async {});
        while pipe.sending() > 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(5), pipe.one_ended())
            .await
            .expect("the wake-up was kept");
    }

    #[tokio::test]
    async fn aborted_parts_wake_the_writer_and_leave_nothing_behind() {
        let mut pipe = InFlight::new();
        pipe.spawn(1, vec![], None, std::future::pending::<()>());
        pipe.abort_all();
        assert!(pipe.is_empty());
        tokio::time::timeout(Duration::from_secs(5), pipe.one_ended())
            .await
            .expect("an aborted task signals too");
    }

    #[tokio::test]
    async fn the_budget_holds_parts_back_until_sent_parts_give_their_share_back() {
        const MIB: u64 = 1024 * 1024;
        let budget = PartBudget::new(16 * MIB);
        let mut pipe = InFlight::new();
        let (release, held) = oneshot::channel::<()>();
        let first = budget.reserve_to_fill(8 * MIB).await;
        pipe.spawn(1, vec![], first, async move {
            let _ = held.await;
        });
        let second = budget.reserve_to_fill(8 * MIB).await;
        assert_eq!(budget.available_kib(), 0);
        // A third part waits: the budget is spent while the first two are being sent.
        let waiting = budget.reserve_to_fill(8 * MIB);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err()
        );
        drop(second);
        let third = tokio::time::timeout(Duration::from_secs(5), &mut waiting)
            .await
            .expect("a part given back makes room");
        assert!(third.is_some());
        // The first part's share comes back when its task ends, with its bytes.
        release.send(()).expect("the part waits");
        pipe.pop_oldest().expect("a part").task.await.expect("ran");
        assert_eq!(budget.available_kib(), 8 * 1024);
        // A part larger than the whole budget still gets through, alone.
        drop(third);
        assert!(budget.reserve_to_fill(64 * MIB).await.is_some());
        assert!(budget.reserve_to_fill(0).await.is_none(), "nothing to hold");
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_kept_waiting_by_slow_clients_goes_ahead_outside_the_budget() {
        const MIB: u64 = 1024 * 1024;
        let budget = PartBudget::new(8 * MIB);
        // A client filling its part slowly holds the whole budget.
        let held = budget.reserve_to_fill(8 * MIB).await;
        assert!(held.is_some());
        let overdrafts = crate::infra::metrics::metrics()
            .part_budget_overdrafts
            .get();
        let started = tokio::time::Instant::now();
        let share = budget.reserve_to_fill(8 * MIB).await;
        assert!(share.is_none(), "no share was free");
        assert_eq!(started.elapsed(), FILL_WAIT, "it waited, then went ahead");
        assert!(
            crate::infra::metrics::metrics()
                .part_budget_overdrafts
                .get()
                > overdrafts
        );
        // The held share still counts, and comes back as usual.
        assert_eq!(budget.available_kib(), 0);
        drop(held);
        assert_eq!(budget.available_kib(), 8 * 1024);
    }
}
