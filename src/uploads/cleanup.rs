//! The cleanup worker: expired uploads are aborted in storage and marked `expired`.
// Being written: see issue 5.

use super::UploadContext;

/// Starts the background worker on the current runtime.
pub fn spawn_worker(ctx: UploadContext) {
    let _ = ctx;
}
