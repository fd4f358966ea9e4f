//! Notifications: e-mail through the SMTP server and signed webhooks to a bucket's targets.
//!
//! Both follow the outbox pattern: the code that records an event queues its notice in the
//! same transaction (`email::queue`, `webhooks::queue`), so a notice exists exactly when its
//! event does and nothing is lost in a crash; nothing is sent there, so a notice never
//! holds up or fails an upload. A worker on every instance then claims due notices under a
//! lease (two instances never send the same one), sends them, and retries failures with
//! backoff (`retry`) until they are delivered or marked failed, still listed for admins.

pub mod email;
mod retry;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use self::retry::Schedule;
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::bucket::EndpointPolicy;
use crate::domain::clock::Clock;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::infra::http_client::{HttpClient, Limits};
use crate::infra::smtp::Mailer;

/// How long a claim holds a notice before another worker may take it over (a worker that
/// died mid-pass). Every attempt ends well within it (SMTP and HTTP deadlines).
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// A webhook target's answer is read up to this and then ignored: only its status counts.
const MAX_ANSWER: usize = 64 * 1024;

/// What the workers need; one per process.
pub struct Notifier {
    db: Database,
    keyring: Arc<Keyring>,
    clock: Clock,
    schedule: Schedule,
    poll: Duration,
    /// `None` without an SMTP server: e-mail stays queued.
    mailer: Option<Mailer>,
    /// Links in messages queued here (upload request reminders).
    portal: crate::app::requests::notices::Portal,
    /// The webhook client, or why it could not be made (no CA certificates on this
    /// machine): the server still starts, and each delivery's log says why it failed.
    http: Result<HttpClient, String>,
}

impl Notifier {
    pub fn new(
        settings: &Settings,
        db: Database,
        keyring: Arc<Keyring>,
        clock: Clock,
    ) -> Result<Self, AppError> {
        let timing = &settings.notifications;
        let hello = settings
            .public_url
            .as_ref()
            .and_then(|u| url::Url::parse(u.as_str()).ok())
            .and_then(|u| u.host_str().map(str::to_string));
        let mailer = settings
            .smtp
            .as_ref()
            .map(|smtp| Mailer::new(smtp, hello.as_deref(), timing.smtp_timeout))
            .transpose()
            .map_err(|e| AppError::internal(format!("SMTP: {e}")))?;
        // Webhook targets follow the bucket endpoint rules, checked at every connection.
        let http = HttpClient::new(
            Limits {
                deadline: timing.webhook_timeout,
                max_body: MAX_ANSWER,
            },
            Some(EndpointPolicy {
                allow_loopback: settings.allow_loopback_endpoints,
            }),
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "webhooks cannot be delivered until this is fixed (install ca-certificates)");
            format!("no HTTPS client: {e}")
        });
        Ok(Self {
            db,
            keyring,
            clock,
            schedule: Schedule::new(timing),
            poll: timing.poll_interval.max(Duration::from_millis(10)),
            mailer,
            portal: crate::app::requests::notices::Portal::of(settings),
            http,
        })
    }

    /// One pass: due e-mail, then due webhook deliveries. A failure of one does not stop
    /// the other.
    pub async fn run_once(&self) -> Result<(), AppError> {
        // Reminders first, so they go out in this same pass.
        let (now, portal) = (self.clock.now_naive(), self.portal.clone());
        let reminded = self
            .db
            .run(move |conn| crate::app::requests::notices::remind_expiring(conn, now, &portal))
            .await;
        if let Err(e) = reminded {
            tracing::warn!(error = %e, "upload request reminders failed; next pass on schedule");
        }
        let mail = email::send_due(self).await;
        let hooks = webhooks::send_due(self).await;
        match mail {
            Ok(r) if r != email::SendReport::default() => {
                tracing::info!(
                    sent = r.sent,
                    retrying = r.retrying,
                    failed = r.failed,
                    "e-mail pass done"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "e-mail pass failed; next pass on schedule"),
        }
        let hooks = hooks?;
        if hooks != webhooks::DeliveryReport::default() {
            tracing::info!(
                delivered = hooks.delivered,
                retrying = hooks.retrying,
                failed = hooks.failed,
                "webhook pass done"
            );
        }
        Ok(())
    }
}

/// A fresh claim token for one pass.
fn claim_token() -> Result<String, AppError> {
    crate::infra::crypto::random_token().map_err(AppError::internal)
}

/// Starts the worker on the current runtime, as the cleanup worker is started. It ends
/// when `stop` is cancelled (after the pass under way) or the runtime shuts down; a failed
/// pass is logged and the next one runs on schedule.
pub fn spawn_worker(
    notifier: Arc<Notifier>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Some(runtime.spawn(worker(notifier, stop))),
        Err(_) => {
            tracing::error!("no async runtime: the notification worker is not running");
            None
        }
    }
}

async fn worker(notifier: Arc<Notifier>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(notifier.poll);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let pass = notifier.clone();
        // Each pass is a task of its own, so even a bug that panics ends one pass, not the
        // worker.
        match tokio::spawn(async move { pass.run_once().await }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "notification pass failed; next pass on schedule")
            }
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                tracing::error!(error = %e, "notification pass crashed; next pass on schedule")
            }
        }
    }
}
