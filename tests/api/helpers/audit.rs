//! What the audit log holds, read straight from the table.

use diesel::prelude::*;
use medport::infra::db::schema::audit_events;

use super::TestApp;

/// One audit event of an action, its details parsed.
#[derive(Debug)]
pub struct AuditRow {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub details: serde_json::Value,
}

impl TestApp {
    /// The events of `action`, oldest first.
    pub fn audit_rows(&self, action: &str) -> Vec<AuditRow> {
        let mut conn = self.db.conn().unwrap();
        let rows: Vec<(Option<String>, Option<String>, String, String)> = audit_events::table
            .filter(audit_events::action.eq(action))
            .order(audit_events::id.asc())
            .select((
                audit_events::actor_user_id,
                audit_events::target_id,
                audit_events::outcome,
                audit_events::details,
            ))
            .load(&mut *conn)
            .unwrap();
        rows.into_iter()
            .map(|(actor, target, outcome, details)| AuditRow {
                actor,
                target,
                outcome,
                details: serde_json::from_str(&details).unwrap(),
            })
            .collect()
    }

    pub fn audit_actions(&self) -> Vec<(String, String, String)> {
        use medport::infra::db::schema::audit_events::dsl::*;
        let mut conn = self.db.conn().unwrap();
        audit_events
            .select((action, outcome, details))
            .order(id.asc())
            .load(&mut *conn)
            .unwrap()
    }

    /// The audit table's stored text, in bytes: every column of every row (ids and times
    /// counted as their text form), for tests that bound how fast it can grow.
    pub fn audit_bytes(&self) -> usize {
        use medport::infra::db::schema::audit_events::dsl::*;
        let mut conn = self.db.conn().unwrap();
        let text: Vec<(String, String, String, String, String, String)> = audit_events
            .select((actor_label, action, outcome, details, prev_hash, hash))
            .load(&mut *conn)
            .unwrap();
        let optional: Vec<(Option<String>, Option<String>)> = audit_events
            .select((ip, target_id))
            .load(&mut *conn)
            .unwrap();
        // id, time, actor id, target type and request id: at most this much more per row.
        let fixed = 8 + 26 + 36 + 16 + 36;
        let text: usize = text
            .iter()
            .map(|(a, b, c, d, e, f)| {
                fixed + a.len() + b.len() + c.len() + d.len() + e.len() + f.len()
            })
            .sum();
        let optional: usize = optional
            .iter()
            .map(|(a, b)| a.as_ref().map_or(0, String::len) + b.as_ref().map_or(0, String::len))
            .sum();
        text + optional
    }

    /// (action, outcome, details) of every event of `action`, oldest first.
    pub fn audit_actions_named(&self, action: &str) -> Vec<(String, String, String)> {
        self.audit_actions()
            .into_iter()
            .filter(|a| a.0 == action)
            .collect()
    }
}
