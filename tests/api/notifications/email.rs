//! E-mail: delivered as text and HTML, markup escaped in HTML and literal in text; an SMTP
//! server that refuses or is down leaves the message queued, counted and listed for admins;
//! the queue survives a restart; two instances on one database send each message once.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use medport::config::Settings;

use super::{outbox_row, queue_email, receipt};
use crate::both_backends;
use crate::helpers::notifications::{
    Mailbox, closed_smtp_port, smtp_env, smtp_on, spawn_notifying,
};
use crate::helpers::{Backend, TestApp, wait_until};

/// `tweak` for an SMTP server on this machine at `port`, sending as `from`.
fn smtp(port: u16, from: &'static str) -> impl FnOnce(&mut Settings) + Send + 'static {
    move |s| s.smtp = Some(smtp_on(port, from))
}

async fn spawn(backend: Backend, smtp_port: Option<u16>) -> TestApp {
    spawn_notifying(backend, move |s| {
        if let Some(port) = smtp_port {
            smtp(port, "noreply@medport.example.org")(s);
        }
    })
    .await
}

/// Admin → Notifications as the main browser sees it.
async fn outbox_page(app: &TestApp) -> String {
    let res = app.get_html("/admin/notifications").await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// Waits up to `secs` until the outbox row of `recipient` satisfies `done`.
async fn wait_row(
    app: &TestApp,
    recipient: &str,
    secs: u64,
    done: impl Fn(&(String, i32, Option<String>)) -> bool,
) -> (String, i32, Option<String>) {
    let read = || outbox_row(app, recipient).expect("the message is in the outbox");
    wait_until(secs, read, done).await
}

async fn a_queued_message_arrives_as_text_and_html_with_markup_escaped(backend: Backend) {
    let env = smtp_env();
    let app = spawn(backend, Some(env.port)).await;
    let mailbox = Mailbox::new(&env);
    queue_email(&app, &receipt(mailbox.email()));

    let got = mailbox.wait_for(1, 20).await;
    assert_eq!(got.len(), 1, "one message received");
    let mail = MessageParser::default().parse(&got[0]).unwrap();
    assert_eq!(mail.subject(), Some("Files received <3"));
    let to = mail.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some(mailbox.address.as_str()));
    let from = mail.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("noreply@medport.example.org"));
    assert_eq!(mail.attachment_count(), 0, "files are never attached");
    assert!(
        mail.content_type()
            .is_some_and(|c| c.subtype() == Some("alternative")),
        "multipart/alternative"
    );

    let text = mail.body_text(0).unwrap();
    assert!(
        text.contains("Files received from <b>Dr. O'Neil</b>"),
        "{text}"
    );
    assert!(text.contains("> <script>alert('x')</script>"), "{text}");
    assert!(
        text.contains("https://medport.example.org/requests/1?a=1&b=2"),
        "{text}"
    );
    let html = mail.body_html(0).unwrap();
    assert!(
        html.contains("Files received from &#60;b&#62;Dr. O&#39;Neil&#60;/b&#62;"),
        "{html}"
    );
    assert!(
        html.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("<b>Dr"),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://medport.example.org/requests/1?a=1&#38;b=2\""),
        "{html}"
    );

    // Sent: the row says so, keeps no content, and the trail has ids and the kind only.
    let (state, attempts, _) = wait_row(&app, &mailbox.address, 10, |r| r.0 == "sent").await;
    assert_eq!((state.as_str(), attempts), ("sent", 1));
    let sent = app.audit_rows("email.sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].details["kind"], "request.receipt");
    assert!(!sent[0].details.to_string().contains(&mailbox.address));
    {
        use diesel::prelude::*;
        use medport::infra::db::schema::email_outbox as t;
        let mut conn = app.db.conn().unwrap();
        let (text, html): (String, String) = t::table
            .filter(t::recipient.eq(&mailbox.address))
            .select((t::body_text, t::body_html))
            .first(&mut *conn)
            .unwrap();
        assert_eq!(
            (text.as_str(), html.as_str()),
            ("", ""),
            "content dropped once sent"
        );
    }
}

async fn a_refusing_server_leaves_the_message_queued_and_listed_then_it_is_sent_once(
    backend: Backend,
) {
    let env = smtp_env();
    let app = spawn(backend, Some(env.port)).await;
    let mailbox = Mailbox::new(&env);
    mailbox.refuse(true);
    queue_email(&app, &receipt(mailbox.email()));

    let (state, attempts, error) = wait_row(&app, &mailbox.address, 10, |r| r.1 >= 2).await;
    assert_eq!(state, "queued");
    assert!(attempts >= 2, "{attempts}");
    assert!(
        error.as_deref().is_some_and(|e| e.contains("451")),
        "{error:?}"
    );
    assert!(mailbox.messages().is_empty());

    app.admin().await;
    let html = outbox_page(&app).await;
    assert!(html.contains(&mailbox.address), "{html}");
    assert!(
        html.contains("request.receipt") && html.contains("451"),
        "{html}"
    );
    assert!(
        html.contains("smtp://127.0.0.1:"),
        "the server is named: {html}"
    );

    mailbox.refuse(false);
    let got = mailbox.wait_for(1, 20).await;
    assert_eq!(got.len(), 1);
    let (state, _, _) = wait_row(&app, &mailbox.address, 10, |r| r.0 == "sent").await;
    assert_eq!(state, "sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailbox.messages().len(), 1, "sent exactly once");
    // Retries are not audited one by one: one event for the outcome.
    assert_eq!(app.audit_rows("email.sent").len(), 1);
    assert!(app.audit_rows("email.failed").is_empty());
}

async fn without_smtp_the_message_waits_and_the_page_says_so(backend: Backend) {
    let app = spawn(backend, None).await;
    let env = smtp_env();
    let mailbox = Mailbox::new(&env);
    queue_email(&app, &receipt(mailbox.email()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        outbox_row(&app, &mailbox.address),
        Some(("queued".into(), 0, None)),
        "nothing tried, nothing lost"
    );
    app.admin().await;
    let html = outbox_page(&app).await;
    assert!(html.contains("SMTP is not configured"), "{html}");
    assert!(
        html.contains(&mailbox.address) && html.contains("1 queued"),
        "{html}"
    );
}

async fn a_message_given_up_on_is_failed_listed_and_can_be_retried(backend: Backend) {
    let app = spawn(backend, Some(closed_smtp_port())).await;
    let env = smtp_env();
    let mailbox = Mailbox::new(&env);
    queue_email(&app, &receipt(mailbox.email()));
    let (state, attempts, error) = wait_row(&app, &mailbox.address, 15, |r| r.0 == "failed").await;
    assert_eq!(state, "failed", "{error:?}");
    assert_eq!(attempts, 5, "the test schedule stops after five attempts");
    let failed = app.audit_rows("email.failed");
    assert_eq!(failed.len(), 1, "one event for the outcome, none per retry");
    assert_eq!(failed[0].details["attempts"], 5);

    app.admin().await;
    let html = outbox_page(&app).await;
    assert!(
        html.contains("1 failed") && html.contains("Retry now"),
        "{html}"
    );
    let id: String = {
        use diesel::prelude::*;
        use medport::infra::db::schema::email_outbox as t;
        let mut conn = app.db.conn().unwrap();
        t::table
            .filter(t::recipient.eq(&mailbox.address))
            .select(t::id)
            .first(&mut *conn)
            .unwrap()
    };
    let res = app
        .post_form(&format!("/admin/notifications/{id}/retry"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.audit_rows("email.retry").len(), 1);
    // Queued again from a fresh series (the server is still down: it fails again).
    let (_, attempts, _) = wait_row(&app, &mailbox.address, 10, |r| r.0 == "failed").await;
    assert_eq!(attempts, 5);
    assert_eq!(app.audit_rows("email.failed").len(), 2);
}

async fn the_queue_survives_a_restart_during_an_smtp_outage(backend: Backend) {
    let env = smtp_env();
    // The server is down: the message is tried, and waits.
    let app = spawn(backend, Some(closed_smtp_port())).await;
    let mailbox = Mailbox::new(&env);
    queue_email(&app, &receipt(mailbox.email()));
    let (state, attempts, error) = wait_row(&app, &mailbox.address, 10, |r| r.1 >= 1).await;
    assert_eq!(state, "queued");
    assert!(attempts >= 1);
    assert!(error.is_some());
    let stopped = app.stop().await;

    // A new server on the same database, with the SMTP server back.
    let (reuse, back) = (
        stopped.reuse(),
        smtp(env.port, "noreply@medport.example.org"),
    );
    let restarted = spawn_notifying(Backend::Sqlite, move |s| {
        reuse(s);
        back(s);
    })
    .await;
    assert_eq!(mailbox.wait_for(1, 20).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailbox.messages().len(), 1, "delivered exactly once");
    assert_eq!(
        outbox_row(&restarted, &mailbox.address).map(|r| r.0),
        Some("sent".into())
    );
    let _ = backend;
}

async fn two_instances_on_one_database_send_each_message_once(backend: Backend) {
    let env = smtp_env();
    let port = env.port;
    let first = spawn_notifying(backend, smtp(port, "first@medport.example.org")).await;
    let (share, own) = (first.share_data(), smtp(port, "second@medport.example.org"));
    let second = spawn_notifying(Backend::Sqlite, move |s| {
        share(s);
        own(s);
    })
    .await;
    let boxes: Vec<Mailbox> = (0..60).map(|_| Mailbox::new(&env)).collect();
    for mailbox in &boxes {
        queue_email(&first, &receipt(mailbox.email()));
    }
    let all_arrived = || boxes.iter().all(|b| !b.messages().is_empty());
    wait_until(60, all_arrived, |done| *done).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut senders = std::collections::BTreeSet::new();
    for mailbox in &boxes {
        let got = mailbox.messages();
        assert_eq!(got.len(), 1, "{}", mailbox.address);
        let mail = MessageParser::default().parse(&got[0]).unwrap();
        let from = mail
            .from()
            .unwrap()
            .first()
            .unwrap()
            .address()
            .unwrap()
            .to_string();
        senders.insert(from);
    }
    // Both instances took part (each signs as its own sender), and none sent twice.
    assert_eq!(senders.len(), 2, "{senders:?}");
    assert_eq!(first.audit_rows("email.sent").len(), 60);
    drop(second);
}

both_backends!(
    a_queued_message_arrives_as_text_and_html_with_markup_escaped,
    a_refusing_server_leaves_the_message_queued_and_listed_then_it_is_sent_once,
    without_smtp_the_message_waits_and_the_page_says_so,
    a_message_given_up_on_is_failed_listed_and_can_be_retried,
    the_queue_survives_a_restart_during_an_smtp_outage,
    two_instances_on_one_database_send_each_message_once,
);
