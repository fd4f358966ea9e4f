//! What an upload request tells people, end to end with real parts: the SMTP test server
//! (aiosmtpd) receives the owner's notices and the sender's receipt, which are parsed here
//! and checked against the stored files; a webhook receiver verifies the signed
//! `request.received`; a reminder goes out once, a day before the expiry.

use std::time::Duration;

use mail_parser::MessageParser;

use crate::both_backends;
use crate::helpers::notifications::{
    Mailbox, Receiver, secret_on, smtp_env, smtp_on, spawn_notifying,
};
use crate::helpers::requests::request_form;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{pdf, settled_status, sign_out, stored_sha256};

const PORTAL: &str = "https://medport.example.org";
const PASSWORD: &str = "a long enough test password";

async fn spawn(backend: Backend) -> TestApp {
    let env = smtp_env();
    spawn_notifying(backend, move |s| {
        s.smtp = Some(smtp_on(env.port, "noreply@medport.example.org"));
        s.allow_loopback_endpoints = true;
        s.public_url = Some(
            medport::config::Settings::load_from(
                None,
                &[("MEDPORT_PUBLIC_URL".to_string(), PORTAL.to_string())].into(),
            )
            .unwrap()
            .public_url
            .unwrap(),
        );
    })
    .await
}

fn parsed(raw: &[u8]) -> (String, String, String) {
    let mail = MessageParser::default().parse(raw).unwrap();
    (
        mail.subject().unwrap_or_default().to_string(),
        mail.body_text(0).unwrap_or_default().into_owned(),
        mail.body_html(0).unwrap_or_default().into_owned(),
    )
}

async fn the_owner_and_the_sender_are_told_and_the_webhook_is_signed(backend: Backend) {
    let app = spawn(backend).await;
    // An admin adds a webhook for request.received to the default bucket.
    let receiver = Receiver::start().await;
    app.admin().await;
    let res = app
        .add_webhook(
            medport::app::buckets::SYSTEM_BUCKET_ID,
            &receiver.url,
            &["request.received"],
        )
        .await;
    assert_eq!(res.status(), 200);
    receiver.trust(&secret_on(&res.text().await.unwrap()));
    sign_out(&app).await;

    // The owner, whose address is a mailbox of the test server, makes a request.
    let env = smtp_env();
    let owner_box = Mailbox::new(&env);
    app.create_user(&owner_box.address, "uploader", PASSWORD);
    app.sign_in(&owner_box.address, PASSWORD).await;
    let mut form = request_form();
    form.retain(|(k, _)| *k != "title");
    form.push(("title", "CD <i>urgent</i>".into()));
    let made = app.make_request(&form).await;

    let sender_box = Mailbox::new(&env);
    let sender = app
        .sender(
            &made.path,
            &[("name", "Ada"), ("email", sender_box.address.as_str())],
        )
        .await;
    // A folder of two files, as the upload page sends it.
    let tus = sender.tus(&app);
    let batch = tus.open_batch(None, 2).await;
    let mut ids = Vec::new();
    for (name, seed) in [("CD/first.pdf", 1), ("CD/second.pdf", 2)] {
        let (status, id, body) = tus
            .send_in_batch(Some(&batch), name, &pdf(3000, seed))
            .await;
        assert_eq!(status, 201, "{body}");
        let id = id.unwrap();
        assert_eq!(settled_status(&app, &id, 20).await, "completed");
        ids.push(id);
    }
    assert_eq!(tus.finish_batch(&batch, 0).await.status(), 200);
    assert_eq!(sender.post(&app, "/send/finish").await.status(), 303);

    // The sender's receipt lists every file with the SHA-256 the server stored.
    let got = sender_box.wait_for(1, 20).await;
    assert_eq!(got.len(), 1, "one receipt");
    let (subject, text, html) = parsed(&got[0]);
    assert!(subject.starts_with("Your receipt R-"), "{subject}");
    for id in &ids {
        let sha = stored_sha256(&app, id).unwrap();
        assert!(
            text.contains(&sha) && html.contains(&sha),
            "{sha} in the receipt"
        );
    }
    // Markup in the title is text in both parts: literal in text, escaped in HTML.
    assert!(text.contains("CD <i>urgent</i>"));
    assert!(html.contains("CD &#60;i&#62;urgent&#60;/i&#62;") && !html.contains("<i>urgent"));
    let receipt_hash = regex::Regex::new(r"chain hash\): ([0-9a-f]{64})")
        .unwrap()
        .captures(&text)
        .map(|c| c[1].to_string())
        .expect("the audit hash in the receipt");

    // The owner heard of the first file, the folder and the finished visit, with links back.
    let got = owner_box.wait_for(3, 20).await;
    let subjects: Vec<String> = got.iter().map(|m| parsed(m).0).collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(
        subjects.iter().any(|s| s.starts_with("A folder arrived")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.starts_with("Files are arriving")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.starts_with("Files received")),
        "{subjects:?}"
    );
    let link = format!("{PORTAL}/requests/{}", made.id);
    for mail in &got {
        let (_, text, _) = parsed(mail);
        assert!(text.contains(&link), "{text}");
        // File names stay in the portal.
        assert!(!text.contains("first.pdf"), "{text}");
    }

    // The bucket's webhook got request.received, signed, with the receipt's proof.
    let posts = receiver.wait_for(1, 20).await;
    let post = posts
        .iter()
        .find(|p| p.event == "request.received")
        .expect("request.received");
    assert!(post.signed);
    assert_eq!(post.body["data"]["request"], made.id.as_str());
    assert_eq!(post.body["data"]["files"], 2);
    assert_eq!(post.body["data"]["audit_hash"], receipt_hash.as_str());
    assert!(!post.raw.contains("first.pdf"), "no file names in webhooks");
}

async fn the_owner_is_reminded_once_a_day_before_the_expiry(backend: Backend) {
    let app = spawn(backend).await;
    let env = smtp_env();
    let owner_box = Mailbox::new(&env);
    app.create_user(&owner_box.address, "uploader", PASSWORD);
    app.sign_in(&owner_box.address, PASSWORD).await;
    let mut form = request_form();
    form.retain(|(k, _)| *k != "expires_days");
    form.push(("expires_days", "2".into()));
    app.make_request(&form).await;
    // Not yet due.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(owner_box.messages().is_empty());
    app.clock.advance(Duration::from_secs(25 * 3600));
    let got = owner_box.wait_for(1, 20).await;
    assert!(parsed(&got[0]).0.starts_with("Closing tomorrow"));
    // Once only, though the worker keeps passing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(owner_box.messages().len(), 1);
}

both_backends!(
    the_owner_and_the_sender_are_told_and_the_webhook_is_signed,
    the_owner_is_reminded_once_a_day_before_the_expiry,
);
