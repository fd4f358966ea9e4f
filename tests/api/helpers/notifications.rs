//! What the notification tests talk to: the SMTP test server (`scripts/test-services.sh
//! smtp`, aiosmtpd) through its mail directory, and a webhook receiver run here, a real
//! HTTP server on 127.0.0.1 that checks `Medport-Signature` itself and answers as a test
//! scripts it. Plus the settings that make the workers quick.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use medport::config::{NotificationSettings, Sender, Settings, SmtpServer, SmtpSettings, SmtpTls};
use medport::domain::email::Email;

use super::{Backend, Options, TestApp, wait_until};

/// An app whose notification workers are quick (`quick_notifications`), with `tweak`.
pub async fn spawn_notifying(
    backend: Backend,
    tweak: impl FnOnce(&mut Settings) + Send + 'static,
) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(move |s: &mut Settings| {
                quick_notifications(s);
                tweak(s);
            }),
            ..Options::default()
        },
    )
    .await
}

/// Worker timing for tests: polls every 50 ms, retries after 100 ms then 200 ms, stops
/// after five failed attempts (the waits pass 700 ms), one webhook POST at most 1 s.
pub fn quick_notifications(s: &mut Settings) {
    s.notifications = NotificationSettings {
        poll_interval: Duration::from_millis(50),
        first_retry: Duration::from_millis(100),
        max_retry: Duration::from_millis(200),
        give_up_after: Duration::from_millis(700),
        webhook_timeout: Duration::from_secs(1),
        smtp_timeout: Duration::from_secs(5),
    };
}

/// The SMTP test server, from `target/test-services.env`.
pub struct SmtpEnv {
    pub port: u16,
    pub maildir: PathBuf,
    pub control: PathBuf,
}

pub fn smtp_env() -> SmtpEnv {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run scripts/test-services.sh smtp and source target/test-services.env")
        })
    };
    let url = url::Url::parse(&var("MEDPORT_TEST_SMTP_URL")).unwrap();
    SmtpEnv {
        port: url.port().unwrap(),
        maildir: PathBuf::from(var("MEDPORT_TEST_SMTP_MAILDIR")),
        control: PathBuf::from(var("MEDPORT_TEST_SMTP_CONTROL")),
    }
}

/// SMTP settings for a server on this machine at `port` (no TLS offered, none needed).
pub fn smtp_on(port: u16, from: &str) -> SmtpSettings {
    SmtpSettings {
        server: SmtpServer {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::Opportunistic,
            username: None,
            password: None,
        },
        from: Sender {
            address: Email::parse(from).unwrap(),
            name: Some("medport test".into()),
        },
    }
}

/// The port of an address where nothing listens (an SMTP server that is down).
pub fn closed_smtp_port() -> u16 {
    let addr = super::closed_port();
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// One recipient of the test SMTP server: a fresh address, its directory of received
/// messages, and the switch that makes the server refuse it (451).
pub struct Mailbox {
    pub address: String,
    dir: PathBuf,
    refuse_flag: PathBuf,
}

impl Mailbox {
    pub fn new(env: &SmtpEnv) -> Self {
        let address = format!("rcpt-{}@example.org", uuid::Uuid::now_v7().simple());
        Self {
            dir: env.maildir.join(&address),
            refuse_flag: env.control.join("refuse").join(&address),
            address,
        }
    }

    pub fn email(&self) -> Email {
        Email::parse(&self.address).unwrap()
    }

    /// While on, the server answers 451 to this recipient (it is up, but takes no mail).
    pub fn refuse(&self, on: bool) {
        if on {
            std::fs::write(&self.refuse_flag, b"").unwrap();
        } else {
            let _ = std::fs::remove_file(&self.refuse_flag);
        }
    }

    /// The messages received so far, raw, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits up to `secs` for `n` messages; returns what arrived.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Vec<u8>> {
        wait_until(secs, || self.messages(), |got| got.len() >= n).await
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.refuse_flag);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the receiver answers one delivery.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// 307 to another URL (which must never be contacted).
    RedirectTo(String),
    /// Answers 200 only after this long (past medport's deadline).
    Hang(Duration),
}

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub delivery: String,
    pub event: String,
    pub raw: String,
    pub body: serde_json::Value,
    pub content_type: String,
    pub user_agent: String,
    /// `Medport-Signature` verified with the secret the receiver was given, within 5 min.
    pub signed: bool,
}

#[derive(Default)]
struct State {
    secret: Mutex<Option<String>>,
    script: Mutex<VecDeque<Answer>>,
    otherwise: Mutex<Option<Answer>>,
    received: Mutex<Vec<Received>>,
}

/// A webhook receiver on 127.0.0.1 (port 0), answering 200 unless scripted otherwise.
pub struct Receiver {
    pub url: String,
    pub port: u16,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let shared = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::default().limit(1 << 20))
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/medport?source=test"),
            port,
            state,
            handle,
        }
    }

    /// The secret the admin page showed once: signatures are checked with it from now on.
    pub fn trust(&self, secret: &str) {
        *self.state.secret.lock().unwrap() = Some(secret.to_string());
    }

    /// The next answers, in order; then `otherwise` (200 by default).
    pub fn answer_next(&self, answers: &[Answer]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().cloned());
    }

    pub fn answer_always(&self, answer: Answer) {
        *self.state.otherwise.lock().unwrap() = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits up to `secs` for `n` POSTs; returns what arrived.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        wait_until(secs, || self.received(), |got| got.len() >= n).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// Stripe's scheme, checked independently of medport's code: `t=<secs>,v1=<hex>`, the
/// HMAC-SHA256 of `<t>.<body>` keyed with the whole secret, `t` within five minutes.
fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signed = [t.to_string().as_bytes(), b".", body].concat();
    ring::hmac::verify(&key, &signed, &v1).is_ok()
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let secret = state.secret.lock().unwrap().clone();
    let signed = secret.is_some_and(|s| signature_ok(&s, &header("medport-signature"), &body));
    let raw = String::from_utf8_lossy(&body).to_string();
    state.received.lock().unwrap().push(Received {
        delivery: header("medport-delivery"),
        event: header("medport-event"),
        body: serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null),
        raw,
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        signed,
    });
    let next = state.script.lock().unwrap().pop_front();
    let answer = next.or_else(|| state.otherwise.lock().unwrap().clone());
    match answer {
        None => HttpResponse::Ok().body("ok"),
        Some(Answer::Status(code)) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
        }
        Some(Answer::RedirectTo(url)) => HttpResponse::TemporaryRedirect()
            .insert_header(("Location", url))
            .finish(),
        Some(Answer::Hang(how_long)) => {
            tokio::time::sleep(how_long).await;
            HttpResponse::Ok().finish()
        }
    }
}

impl TestApp {
    /// Adds a webhook to `bucket` through the admin form (the main browser must be an
    /// admin's); the answer as it came.
    pub async fn add_webhook(&self, bucket: &str, url: &str, events: &[&str]) -> reqwest::Response {
        let mut fields = vec![("url", url)];
        fields.extend(events.iter().map(|e| ("events", *e)));
        self.post_form(&format!("/admin/buckets/{bucket}/webhooks"), &fields)
            .await
    }
}

/// The signing secret on the page that created a webhook.
pub fn secret_on(html: &str) -> String {
    regex::Regex::new(r"whsec_[0-9a-f]{64}")
        .unwrap()
        .find(html)
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| panic!("no secret on the page: {html}"))
}
