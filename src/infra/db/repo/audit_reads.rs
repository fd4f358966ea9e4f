//! Reading the audit log as the admin viewer and its CSV export do: filtered, paged, and in
//! batches up to a snapshot. (Appending events and verifying the chain are `app::audit`.)

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::audit_events;
use crate::infra::db::{DbConnection, DbError, MultiBackend};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

pub use super::audit_events::AuditRow as Row;

/// Which events to read; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A LIKE pattern (escape character `\`) matched against the lowercased actor label or
    /// the actor's user id.
    pub actor_like: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<&'static str>,
    /// Events at or after this instant.
    pub from: Option<NaiveDateTime>,
    /// Events before this instant.
    pub before: Option<NaiveDateTime>,
}

impl Filter {
    /// Every event matching the filter, as a boxed query to refine further.
    fn query(&self) -> audit_events::BoxedQuery<'static, MultiBackend> {
        use audit_events::dsl as a;
        let mut q = a::audit_events.into_boxed();
        if let Some(pattern) = &self.actor_like {
            q = q.filter(
                lower(a::actor_label)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(a::actor_user_id
                        .like(pattern.clone())
                        .escape('\\')
                        .assume_not_null()),
            );
        }
        if let Some(action) = &self.action {
            q = q.filter(a::action.eq(action.clone()));
        }
        if let Some(outcome) = self.outcome {
            q = q.filter(a::outcome.eq(outcome));
        }
        if let Some(from) = self.from {
            q = q.filter(a::occurred_at.ge(from));
        }
        if let Some(before) = self.before {
            q = q.filter(a::occurred_at.lt(before));
        }
        q
    }
}

/// How many events match.
pub fn count(conn: &mut DbConnection, filter: &Filter) -> Result<i64, DbError> {
    Ok(filter.query().count().get_result(conn)?)
}

/// Matching events, newest first, `limit` of them after skipping `offset`.
pub fn newest_first(
    conn: &mut DbConnection,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Row>, DbError> {
    Ok(filter
        .query()
        .order(audit_events::id.desc())
        .limit(limit)
        .offset(offset)
        .select(Row::as_select())
        .load(conn)?)
}

/// The newest event's id, if any.
pub fn max_id(conn: &mut DbConnection) -> Result<Option<i64>, DbError> {
    Ok(audit_events::table
        .select(diesel::dsl::max(audit_events::id))
        .first(conn)?)
}

/// How many events with `id <= upper` match.
pub fn count_up_to(conn: &mut DbConnection, filter: &Filter, upper: i64) -> Result<i64, DbError> {
    Ok(filter
        .query()
        .filter(audit_events::id.le(upper))
        .count()
        .get_result(conn)?)
}

/// Matching events with `after < id <= upper`, oldest first, at most `limit`.
pub fn batch(
    conn: &mut DbConnection,
    filter: &Filter,
    after: i64,
    upper: i64,
    limit: i64,
) -> Result<Vec<Row>, DbError> {
    Ok(filter
        .query()
        .filter(audit_events::id.gt(after))
        .filter(audit_events::id.le(upper))
        .order(audit_events::id.asc())
        .limit(limit)
        .select(Row::as_select())
        .load(conn)?)
}

/// The distinct actions in the log, in order, at most `limit`.
pub fn actions(conn: &mut DbConnection, limit: i64) -> Result<Vec<String>, DbError> {
    Ok(audit_events::table
        .select(audit_events::action)
        .distinct()
        .order(audit_events::action.asc())
        .limit(limit)
        .load(conn)?)
}
