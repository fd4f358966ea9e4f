//! The audit log viewer and CSV export: who may read it, filters, paging, the chain banner,
//! and a CSV that is RFC 4180 and safe to open in a spreadsheet.

mod chain;
mod export;
mod list;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use medport::app::audit::{self, Actor, Event, Outcome};
use medport::infra::db::schema::audit_events;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, location};

const PW: &str = "correct horse battery staple";

/// (id, actor, action, outcome) of each event row on the page, in page order.
fn rows(html: &str) -> Vec<(i64, String, String, String)> {
    let re = regex::Regex::new(
        r#"(?s)<tr id="event-(\d+)">\s*<td><time datetime="[^"]+" title="[^"]+ UTC" data-local>[^<]*</time></td>\s*<td>([^<]*)(?:<br>.*?)?</td>\s*<td><code>([^<]*)</code></td>\s*<td><span class="badge [^"]*">([^<]*)</span>"#,
    )
    .unwrap();
    re.captures_iter(html)
        .map(|c| {
            (
                c[1].parse().unwrap(),
                c[2].to_string(),
                c[3].to_string(),
                c[4].to_string(),
            )
        })
        .collect()
}

async fn page(app: &TestApp, query: &str) -> (u16, String) {
    app.page(&format!("/admin/audit{query}")).await
}

fn record(app: &TestApp, events: &[Event]) {
    let mut conn = app.db.conn().unwrap();
    medport::infra::db::write_tx(&mut conn, |conn| {
        for e in events {
            audit::record(conn, e)?;
        }
        Ok::<_, medport::app::error::AppError>(())
    })
    .unwrap();
}

/// An event at a chosen time, inserted directly (the chain does not matter here).
fn insert_at(app: &TestApp, at: NaiveDateTime, action: &str) {
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::occurred_at.eq(at),
            audit_events::actor_label.eq("dated@example.org"),
            audit_events::action.eq(action),
            audit_events::outcome.eq("success"),
            audit_events::details.eq("{}"),
            audit_events::prev_hash.eq("x"),
            audit_events::hash.eq(uuid::Uuid::now_v7().to_string()),
        ))
        .execute(&mut *conn)
        .unwrap();
}

fn at(day: &str, time: &str) -> NaiveDateTime {
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .unwrap()
        .and_time(chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.f").unwrap())
}

fn count_where_action(app: &TestApp, name: &str) -> usize {
    app.audit_actions().iter().filter(|a| a.0 == name).count()
}
