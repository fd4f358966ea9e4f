//! Append-only audit trail with a hash chain. Each row stores the previous row's hash and a
//! SHA-256 over its own canonical fields, so editing or removing a row breaks the chain at
//! that point; `medport audit verify` finds the first broken link. Database triggers refuse
//! UPDATE and DELETE on the table as a second line of defence.
//!
//! `record` takes a connection so that an event commits in the same transaction as the
//! change it describes: there is never a change without its event, or the reverse.

use chrono::{DurationRound, NaiveDateTime, TimeDelta, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod refusals;

pub use crate::infra::db::repo::audit_events::AuditRow;
use crate::infra::db::repo::audit_events::NewRow;
use crate::infra::db::{Database, DbConnection, DbError, repo, write_tx};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// Who did it. `label` is what a reader of the log sees (an email at the time, `system`,
/// or `anonymous`), kept even if the user is later removed.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<String>,
    pub label: String,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            user_id: None,
            label: "system".into(),
        }
    }

    pub fn anonymous() -> Self {
        Self {
            user_id: None,
            label: "anonymous".into(),
        }
    }

    /// Someone without an account sending through an upload request, named by their
    /// receipt number.
    pub fn sender(receipt: &str) -> Self {
        Self {
            user_id: None,
            label: format!("sender {receipt}"),
        }
    }

    pub fn user(id: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            user_id: Some(id.into()),
            label: email.into(),
        }
    }
}

/// Where the request came from; both optional for CLI-originated events.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// One event to append. `details` must never hold a secret (passwords, keys, tokens).
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    pub action: &'static str,
    pub outcome: Outcome,
    pub target: Option<(&'static str, String)>,
    pub origin: Origin,
    pub details: Value,
}

impl Event {
    pub fn new(actor: Actor, action: &'static str, outcome: Outcome) -> Self {
        Self {
            actor,
            action,
            outcome,
            target: None,
            origin: Origin::default(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &'static str, id: impl Into<String>) -> Self {
        self.target = Some((kind, id.into()));
        self
    }

    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// The fields a hash covers, in a fixed order. JSON array encoding gives unambiguous
/// boundaries between fields (no "ab"+"c" == "a"+"bc" collisions).
#[allow(clippy::too_many_arguments)]
fn chain_hash(
    prev_hash: &str,
    occurred_at: &NaiveDateTime,
    actor_user_id: Option<&str>,
    actor_label: &str,
    action: &str,
    outcome: &str,
    target_type: Option<&str>,
    target_id: Option<&str>,
    ip: Option<&str>,
    request_id: Option<&str>,
    details: &str,
) -> String {
    let canonical = serde_json::json!([
        "medport-audit-v1",
        prev_hash,
        occurred_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        actor_user_id,
        actor_label,
        action,
        outcome,
        target_type,
        target_id,
        ip,
        request_id,
        details,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn row_hash(row: &AuditRow) -> String {
    chain_hash(
        &row.prev_hash,
        &row.occurred_at,
        row.actor_user_id.as_deref(),
        &row.actor_label,
        &row.action,
        &row.outcome,
        row.target_type.as_deref(),
        row.target_id.as_deref(),
        row.ip.as_deref(),
        row.request_id.as_deref(),
        &row.details,
    )
}

/// Both databases keep microseconds; truncating first makes the hashed value the stored one.
fn now_micros() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

/// Appends one event. Call it inside the transaction of the change it records (see
/// `db::write_tx`); on its own it opens a transaction itself.
pub fn record(conn: &mut DbConnection, event: &Event) -> Result<i64, DbError> {
    record_hashed(conn, event).map(|(id, _)| id)
}

/// As `record`; also returns the event's chain hash, which a receipt shows as its proof.
pub fn record_hashed(conn: &mut DbConnection, event: &Event) -> Result<(i64, String), DbError> {
    if repo::audit_events::in_transaction(conn) {
        // In the caller's transaction itself, not a savepoint: an event that cannot be
        // written takes the change it records down with it.
        append(conn, event)
    } else {
        crate::infra::db::write_tx(conn, |conn| append(conn, event))
    }
}

fn append(conn: &mut DbConnection, event: &Event) -> Result<(i64, String), DbError> {
    let details = event.details.to_string();
    {
        repo::audit_events::lock_chain(conn)?;
        let prev: String =
            repo::audit_events::head_hash(conn)?.unwrap_or_else(|| GENESIS_HASH.to_string());
        let occurred_at = now_micros();
        let (target_type, target_id) = match &event.target {
            Some((kind, id)) => (Some(*kind), Some(id.as_str())),
            None => (None, None),
        };
        let hash = chain_hash(
            &prev,
            &occurred_at,
            event.actor.user_id.as_deref(),
            &event.actor.label,
            event.action,
            event.outcome.as_str(),
            target_type,
            target_id,
            event.origin.ip.as_deref(),
            event.origin.request_id.as_deref(),
            &details,
        );
        let id = repo::audit_events::insert(
            conn,
            &NewRow {
                occurred_at,
                actor_user_id: event.actor.user_id.as_deref(),
                actor_label: &event.actor.label,
                action: event.action,
                outcome: event.outcome.as_str(),
                target_type,
                target_id,
                ip: event.origin.ip.as_deref(),
                request_id: event.origin.request_id.as_deref(),
                details: &details,
                prev_hash: &prev,
                hash: &hash,
            },
        )?;
        Ok((id, hash))
    }
}

/// Outcome of a chain check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: u64,
    pub head: String,
    pub broken: Option<BrokenLink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub id: i64,
    pub reason: &'static str,
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.broken {
            None => write!(
                f,
                "audit chain intact: {} events verified, head {}",
                self.checked, self.head
            ),
            Some(b) => write!(
                f,
                "audit chain BROKEN at event {}: {} ({} events verified before it)",
                b.id, b.reason, self.checked
            ),
        }
    }
}

/// Walks the whole chain in id order, in pages, and stops at the first broken link.
/// Records one event on its own (`record` opens its own transaction when none is open).
pub async fn record_alone(db: &Database, event: Event) -> Result<(), DbError> {
    db.run(move |conn| record(conn, &event).map(drop)).await
}

/// Starts an export: the newest event now (the export's upper bound), how many events up to
/// it match `filter`, and `event` recorded with that count (`rows`) in its details, all in
/// one transaction. The export's own event therefore comes after what it exports.
pub async fn start_export(
    db: &Database,
    filter: crate::infra::db::repo::audit_reads::Filter,
    event: Event,
) -> Result<i64, DbError> {
    use crate::infra::db::repo::audit_reads;
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let upper = audit_reads::max_id(conn)?.unwrap_or(0);
            let rows = audit_reads::count_up_to(conn, &filter, upper)?;
            let mut details = event.details.clone();
            details["rows"] = serde_json::json!(rows);
            record(conn, &event.clone().details(details))?;
            Ok::<_, DbError>(upper)
        })
    })
    .await
}

pub fn verify(conn: &mut DbConnection) -> Result<Verification, DbError> {
    const PAGE: i64 = 1000;
    let mut expected_prev = GENESIS_HASH.to_string();
    let mut checked = 0u64;
    let mut after = i64::MIN;
    loop {
        let rows = repo::audit_events::page_after(conn, after, PAGE)?;
        let Some(last) = rows.last() else {
            return Ok(Verification {
                checked,
                head: expected_prev,
                broken: None,
            });
        };
        after = last.id;
        for row in &rows {
            let broken = if row.prev_hash != expected_prev {
                Some(
                    "its link to the previous event is broken (an event before it was removed, inserted or altered)",
                )
            } else if row_hash(row) != row.hash {
                Some("its contents do not match its hash (the row was altered)")
            } else {
                None
            };
            if let Some(reason) = broken {
                return Ok(Verification {
                    checked,
                    head: expected_prev,
                    broken: Some(BrokenLink { id: row.id, reason }),
                });
            }
            expected_prev = row.hash.clone();
            checked += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_every_field() {
        let t = now_micros();
        let base = chain_hash(
            GENESIS_HASH,
            &t,
            Some("u"),
            "a@b",
            "login",
            "success",
            None,
            None,
            None,
            None,
            "{}",
        );
        let variants = [
            chain_hash(
                "1",
                &t,
                Some("u"),
                "a@b",
                "login",
                "success",
                None,
                None,
                None,
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                None,
                "a@b",
                "login",
                "success",
                None,
                None,
                None,
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@c",
                "login",
                "success",
                None,
                None,
                None,
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@b",
                "logout",
                "success",
                None,
                None,
                None,
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@b",
                "login",
                "failure",
                None,
                None,
                None,
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@b",
                "login",
                "success",
                Some("x"),
                None,
                None,
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@b",
                "login",
                "success",
                None,
                Some("x"),
                None,
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@b",
                "login",
                "success",
                None,
                None,
                Some("x"),
                None,
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@b",
                "login",
                "success",
                None,
                None,
                None,
                Some("x"),
                "{}",
            ),
            chain_hash(
                GENESIS_HASH,
                &t,
                Some("u"),
                "a@b",
                "login",
                "success",
                None,
                None,
                None,
                None,
                "{\"a\":1}",
            ),
        ];
        for v in variants {
            assert_ne!(base, v);
        }
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let t = now_micros();
        let a = chain_hash(
            GENESIS_HASH,
            &t,
            None,
            "ab",
            "c",
            "success",
            None,
            None,
            None,
            None,
            "{}",
        );
        let b = chain_hash(
            GENESIS_HASH,
            &t,
            None,
            "a",
            "bc",
            "success",
            None,
            None,
            None,
            None,
            "{}",
        );
        assert_ne!(a, b);
    }
}
