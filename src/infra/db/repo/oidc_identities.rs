//! Which medport account an identity at an OpenID Provider signs in as.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::oidc_identities;
use crate::infra::db::{DbConnection, DbError};

/// The account linked to `subject` at `issuer`, if any.
pub fn user_of(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<String>, DbError> {
    Ok(oidc_identities::table
        .find((issuer, subject))
        .select(oidc_identities::user_id)
        .first(conn)
        .optional()?)
}

/// Links the identity to the account; `false` when the identity is already linked (a
/// parallel first sign-in won).
pub fn link(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(oidc_identities::table)
        .values((
            oidc_identities::issuer.eq(issuer),
            oidc_identities::subject.eq(subject),
            oidc_identities::user_id.eq(user_id),
            oidc_identities::created_at.eq(now),
        ))
        .execute(conn)
        .map_err(DbError::from);
    match inserted {
        Err(e) if e.is_unique_violation() => Ok(false),
        other => other.map(|_| true),
    }
}
