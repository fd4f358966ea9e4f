//! What `/metrics` shows: the counters the pipeline keeps as it goes, plus the levels read
//! when scraped (database pool, part-buffer budget, queue lengths).

use crate::app::error::AppError;
use crate::app::uploads::{ScanStatus, UploadContext, UploadStatus};
use crate::infra::db::repo::uploads as repo;
use crate::infra::metrics::metrics;

/// The metrics in Prometheus's text format, levels read now.
pub async fn scrape(ctx: &UploadContext) -> Result<String, AppError> {
    let m = metrics();
    let now = ctx.clock.now_naive();
    let (scan, cleanup) = ctx
        .db
        .run(move |conn| {
            let scan = repo::count_scan_waiting(conn, ScanStatus::Pending.as_str())?;
            let cleanup = repo::count_due_for_cleanup(
                conn,
                UploadStatus::Active.as_str(),
                UploadStatus::CleanupFailed.as_str(),
                now,
            )?;
            Ok::<_, AppError>((scan, cleanup))
        })
        .await?;
    m.queue_length.with_label_values(&["scan"]).set(scan);
    m.queue_length.with_label_values(&["cleanup"]).set(cleanup);
    // Read after the queries, so the connection they used is back in the pool.
    let (in_use, idle) = ctx.db.pool_usage();
    m.db_connections
        .with_label_values(&["in_use"])
        .set(i64::from(in_use));
    m.db_connections
        .with_label_values(&["idle"])
        .set(i64::from(idle));
    let (total, used) = ctx.part_budget.usage_bytes();
    let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.part_budget_bytes
        .with_label_values(&["total"])
        .set(gauge(total));
    m.part_budget_bytes
        .with_label_values(&["in_use"])
        .set(gauge(used));
    Ok(m.render())
}
