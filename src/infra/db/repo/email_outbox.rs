//! The email_outbox table: messages waiting for the SMTP server, and what became of them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::leased_queue::{free_and_due, leased_queue};
use crate::infra::db::schema::email_outbox;
use crate::infra::db::{DbConnection, DbError};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = email_outbox)]
pub struct NewRow<'a> {
    pub id: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: &'a str,
    pub kind: &'a str,
    pub state: &'a str,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &NewRow<'_>) -> Result<(), DbError> {
    diesel::insert_into(email_outbox::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

leased_queue!(email_outbox);

/// A claimed message, as the worker sends it.
#[derive(Debug, Clone, Queryable)]
pub struct Claimed {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub kind: String,
    pub attempts: i32,
}

/// The messages in `ids` that `token` holds.
pub fn claimed(
    conn: &mut DbConnection,
    ids: &[String],
    token: &str,
) -> Result<Vec<Claimed>, DbError> {
    Ok(email_outbox::table
        .filter(email_outbox::id.eq_any(ids))
        .filter(email_outbox::lease_token.eq(token))
        .order(email_outbox::id.asc())
        .select((
            email_outbox::id,
            email_outbox::recipient,
            email_outbox::subject,
            email_outbox::body_text,
            email_outbox::body_html,
            email_outbox::kind,
            email_outbox::attempts,
        ))
        .load(conn)?)
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub state: &'a str,
    pub attempts: i32,
    pub next_at: NaiveDateTime,
    /// The server's answer or the connection failure, for an attempt that failed.
    pub error: Option<&'a str>,
    /// When the server accepted it; its bodies are then emptied (the recipient has them).
    pub sent_at: Option<NaiveDateTime>,
}

/// Records an attempt and releases the lease. Only while `token` holds the lease; `true`
/// when written.
pub fn record(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    attempt: &Attempt<'_>,
) -> Result<bool, DbError> {
    let row = email_outbox::table
        .find(id)
        .filter(email_outbox::lease_token.eq(token));
    let outcome = (
        email_outbox::state.eq(attempt.state),
        email_outbox::attempts.eq(attempt.attempts),
        email_outbox::next_attempt_at.eq(attempt.next_at),
        email_outbox::last_error.eq(attempt.error),
        email_outbox::sent_at.eq(attempt.sent_at),
        email_outbox::lease_token.eq(None::<String>),
        email_outbox::lease_until.eq(None::<NaiveDateTime>),
    );
    let changed = match attempt.sent_at {
        Some(_) => diesel::update(row)
            .set((
                outcome,
                email_outbox::body_text.eq(""),
                email_outbox::body_html.eq(""),
            ))
            .execute(conn)?,
        None => diesel::update(row).set(outcome).execute(conn)?,
    };
    Ok(changed == 1)
}

/// A failed message queued again from its first attempt (an admin's "retry now").
pub fn requeue(
    conn: &mut DbConnection,
    id: &str,
    from: &str,
    to: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        email_outbox::table
            .find(id)
            .filter(email_outbox::state.eq(from)),
    )
    .set((
        email_outbox::state.eq(to),
        email_outbox::attempts.eq(0),
        email_outbox::next_attempt_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// One message as the admin page lists it: never its bodies.
#[derive(Debug, Clone, Queryable)]
pub struct Listed {
    pub id: String,
    pub recipient: String,
    pub kind: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

/// The newest `limit` messages in any of `states`.
pub fn list(conn: &mut DbConnection, states: &[&str], limit: i64) -> Result<Vec<Listed>, DbError> {
    Ok(email_outbox::table
        .filter(email_outbox::state.eq_any(states))
        .order((email_outbox::created_at.desc(), email_outbox::id.desc()))
        .limit(limit)
        .select((
            email_outbox::id,
            email_outbox::recipient,
            email_outbox::kind,
            email_outbox::state,
            email_outbox::attempts,
            email_outbox::next_attempt_at,
            email_outbox::last_error,
            email_outbox::created_at,
            email_outbox::sent_at,
        ))
        .load(conn)?)
}
