//! Revalidating every bucket: the bucket page's "test connection" (`Opener::test_connection`:
//! reach the bucket, write a probe object, which S3 must store with the bucket's server-side
//! encryption, read it back, delete it) run on each bucket. A few run at once and each has a
//! time limit, so one endpoint that never answers cannot hold the page.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use super::ChangedBy;
use crate::app::audit::{self, Event, Outcome};
use crate::app::buckets::opener::{Opener, PROBE_PREFIX, StepResult, StepState};
use crate::app::buckets::{Bucket, queries};
use crate::app::error::AppError;
use crate::infra::db::DbConnection;

pub const AUDIT_ACTION: &str = "incident.buckets_revalidated";
/// Buckets tested at once.
const CONCURRENCY: usize = 4;
/// One bucket's limit. Each step already has its own; this one also covers opening the
/// bucket (resolving its endpoint), which has none.
pub const BUCKET_LIMIT: Duration = Duration::from_secs(30);

/// What became of one bucket's test.
#[derive(Debug, Clone)]
pub enum Checked {
    Steps(Vec<StepResult>),
    /// Cut off at [`BUCKET_LIMIT`].
    TimedOut,
}

#[derive(Debug, Clone)]
pub struct Revalidated {
    pub bucket: Bucket,
    pub checked: Checked,
}

impl Revalidated {
    pub fn passed(&self) -> bool {
        match &self.checked {
            Checked::Steps(steps) => steps.iter().all(|s| s.state == StepState::Ok),
            Checked::TimedOut => false,
        }
    }

    /// Each step's result, or `None` when the test was cut off.
    pub fn steps(&self) -> Option<&[StepResult]> {
        match &self.checked {
            Checked::Steps(steps) => Some(steps),
            Checked::TimedOut => None,
        }
    }

    /// Why it failed, safe to show: the failed step and its reason.
    pub fn reason(&self) -> Option<String> {
        match &self.checked {
            Checked::Steps(steps) => steps
                .iter()
                .find(|s| s.state == StepState::Failed)
                .map(|s| format!("{}: {}", s.label, s.detail)),
            Checked::TimedOut => Some(format!(
                "no answer within {} seconds; a test object may be left under {PROBE_PREFIX}",
                BUCKET_LIMIT.as_secs()
            )),
        }
    }
}

/// Every bucket's result, in the bucket list's order.
#[derive(Debug, Clone)]
pub struct Revalidation {
    pub rows: Vec<Revalidated>,
}

impl Revalidation {
    pub fn passed(&self) -> usize {
        self.rows.iter().filter(|r| r.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.rows.len() - self.passed()
    }
}

/// Tests every bucket. Each test writes a probe object (and deletes it), so this is never
/// run for a page view.
pub async fn revalidate_all(opener: &Opener) -> Result<Revalidation, AppError> {
    let all = opener.db.run(queries::all).await?;
    let results = each_bounded(&all, CONCURRENCY, BUCKET_LIMIT, |bucket| {
        opener.test_connection(bucket)
    })
    .await;
    let rows = all
        .into_iter()
        .zip(results)
        .map(|(bucket, steps)| Revalidated {
            bucket,
            checked: steps.map_or(Checked::TimedOut, Checked::Steps),
        })
        .collect();
    Ok(Revalidation { rows })
}

/// Runs `check` on every item, at most `concurrency` at once (a slow one does not hold back
/// the others), each cut off after `limit` (`None`). Results come in the items' order.
async fn each_bounded<'a, T, R, Fut>(
    items: &'a [T],
    concurrency: usize,
    limit: Duration,
    check: impl Fn(&'a T) -> Fut,
) -> Vec<Option<R>>
where
    Fut: Future<Output = R> + 'a,
{
    let mut done: Vec<(usize, Option<R>)> = futures_util::stream::iter(items.iter().enumerate())
        .map(|(i, item)| {
            // Made when a slot is free, so the limit counts from the start of this check.
            let bounded = tokio::time::timeout(limit, check(item));
            async move { (i, bounded.await.ok()) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Records `incident.buckets_revalidated` with how many passed and failed, and which failed
/// and why (the safe reasons the page shows).
pub fn record(
    conn: &mut DbConnection,
    revalidation: &Revalidation,
    by: &ChangedBy,
) -> Result<(), AppError> {
    let failed: Vec<_> = revalidation
        .rows
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            json!({
                "id": r.bucket.id.as_str(),
                "name": r.bucket.display_name,
                "reason": r.reason(),
            })
        })
        .collect();
    let outcome = if failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let event = Event::new(by.actor.clone(), AUDIT_ACTION, outcome)
        .origin(by.origin.clone())
        .details(json!({
            "passed": revalidation.passed(),
            "failed": revalidation.failed(),
            "failed_buckets": failed,
            "via": by.via,
        }));
    audit::record(conn, &event)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_check_that_never_ends_is_cut_off_and_the_others_still_run() {
        let items: Vec<u32> = (0..6).collect();
        let started = Instant::now();
        let results = each_bounded(&items, 2, Duration::from_millis(200), |n| async move {
            if *n == 0 {
                std::future::pending::<()>().await;
            }
            n * 10
        })
        .await;
        assert_eq!(
            results,
            vec![None, Some(10), Some(20), Some(30), Some(40), Some(50)]
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn no_more_than_the_concurrency_run_at_once() {
        let items: Vec<u32> = (0..9).collect();
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let results = each_bounded(&items, 3, Duration::from_secs(5), |n| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                *n
            }
        })
        .await;
        assert_eq!(results, items.into_iter().map(Some).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
