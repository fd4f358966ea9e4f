//! `/metrics`: Prometheus's text format, read back with a parser we did not write. Each test
//! runs its own `medport serve` process, so the counters are that process's alone and
//! their changes are exact.

use std::collections::HashMap;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, serve_with_log};
use crate::tus_support::{Tus, pdf};

const PASSWORD: &str = "a long enough test password";
const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    async fn scrape(client: &reqwest::Client, address: &str) -> Self {
        let res = client
            .get(format!("{address}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let kind = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        let text = res.text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Self(prometheus_parse::Scrape::parse(lines).unwrap())
    }

    /// The value of the one sample of `metric` with these labels (a histogram: its count).
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.values(metric, labels);
        assert_eq!(found.len(), 1, "one {metric} {labels:?} sample");
        found[0]
    }

    /// As `value`, but a series not yet created counts as 0.
    fn value_or_zero(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.values(metric, labels).first().copied().unwrap_or(0.0)
    }

    fn values(&self, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                other => panic!("{metric}: unexpected {other:?}"),
            })
            .collect()
    }

    fn labels(&self) -> Vec<(String, String, String)> {
        self.0
            .samples
            .iter()
            .flat_map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| (s.metric.clone(), k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

async fn the_counters_move_as_uploads_happen_and_no_label_holds_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("clinician@example.org", "uploader", PASSWORD);
    let key = app.create_api_key(&user, "upload,read");
    let (mut server, address, _log) = serve_with_log(&app, &[]);
    let client = reqwest::Client::new();
    let before = Metrics::scrape(&client, &address).await;

    let mut tus = Tus::with_key(&app, &key);
    tus.base = address.clone();
    let data = pdf(300_000, 7);
    let id = tus
        .upload("Jane Doe report.pdf", &data, None, 100_000)
        .await;
    let mut executable = b"MZ".to_vec();
    executable.resize(4096, 0);
    let refused = tus
        .create_ok("Jane Doe renamed.pdf", executable.len() as u64, None)
        .await;
    assert_eq!(
        tus.patch(&refused, 0, executable.clone()).await.status(),
        415
    );
    let content = client
        .get(format!("{address}/api/v1/uploads/{id}/content"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(content.bytes().await.unwrap().len(), data.len());

    let mut watch = app.watch_writes();
    let after = Metrics::scrape(&client, &address).await;
    assert_eq!(watch.written(), Vec::<String>::new(), "a scrape only reads");
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        after.value(metric, labels) - before.value_or_zero(metric, labels)
    };
    assert_eq!(moved("medport_uploads_started_total", &[]), 2.0);
    assert_eq!(moved("medport_uploads_completed_total", &[]), 1.0);
    assert_eq!(
        moved("medport_uploads_refused_total", &[("reason", "content")]),
        1.0
    );
    assert_eq!(
        moved(
            "medport_uploads_refused_total",
            &[("reason", "bucket_full")]
        ),
        0.0
    );
    assert_eq!(
        moved("medport_uploaded_bytes_total", &[]),
        (data.len() + executable.len()) as f64
    );
    assert_eq!(
        moved("medport_downloaded_bytes_total", &[]),
        data.len() as f64
    );
    assert_eq!(
        moved(
            "medport_http_requests_total",
            &[("route", "tus"), ("status", "204")]
        ),
        3.0,
        "three PATCHes stored"
    );
    assert_eq!(
        after.value(
            "medport_http_requests_total",
            &[("route", "tus"), ("status", "415")]
        ),
        1.0
    );
    assert!(
        after.value("medport_http_request_duration_seconds", &[("route", "tus")]) >= 6.0,
        "every tus request is timed"
    );
    assert_eq!(
        after.value(
            "medport_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(after.value("medport_parts_in_flight", &[]), 0.0);
    assert_eq!(
        after.value("medport_part_buffer_bytes", &[("state", "in_use")]),
        0.0
    );
    assert!(after.value("medport_part_buffer_bytes", &[("state", "total")]) > 0.0);
    after.value("medport_part_buffer_overdrafts_total", &[]);
    assert_eq!(
        after.value("medport_queue_length", &[("queue", "scan")]),
        0.0
    );
    assert_eq!(
        after.value("medport_queue_length", &[("queue", "cleanup")]),
        0.0
    );
    assert!(after.value("medport_db_pool_connections", &[("state", "idle")]) >= 1.0);
    after.value("medport_db_pool_waiting", &[]);

    // Labels come from fixed sets: nothing the clinician typed or sent appears.
    for (metric, name, value) in after.labels() {
        let allowed = match name.as_str() {
            "route" => [
                "tus", "api", "dicomweb", "static", "health", "metrics", "auth", "admin",
                "studies", "uploads", "page",
            ]
            .contains(&value.as_str()),
            "status" => value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()),
            "reason" | "state" | "queue" | "version" | "le" => !value.contains("Jane"),
            _ => false,
        };
        assert!(allowed, "{metric}: label {name}={value}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

both_backends!(the_counters_move_as_uploads_happen_and_no_label_holds_user_input);

/// The machine's own address on its network: not loopback.
fn address_beyond_loopback() -> std::net::IpAddr {
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("192.0.2.1:9").unwrap();
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "the tests need a network interface besides loopback, found {ip}"
    );
    ip
}

#[tokio::test]
async fn other_machines_need_the_token_and_a_proxy_cannot_lend_them_loopback() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let get = |url: String, headers: Vec<(&'static str, String)>| {
        let client = client.clone();
        async move {
            let mut rb = client.get(url);
            for (k, v) in headers {
                rb = rb.header(k, v);
            }
            let res = rb.send().await.unwrap();
            let status = res.status().as_u16();
            let challenge = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string());
            (status, challenge, res.text().await.unwrap())
        }
    };
    let forwarded = || vec![("X-Forwarded-For", "203.0.113.9".to_string())];

    // No token configured: this machine only.
    let (mut server, address, _log) = serve_with_log(
        &app,
        &[
            ("MEDPORT_BIND", "0.0.0.0:0"),
            ("MEDPORT_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    let port = address.rsplit(':').next().unwrap().to_string();
    let outside = format!("http://{}:{port}/metrics", address_beyond_loopback());
    assert_eq!(get(format!("{address}/metrics"), vec![]).await.0, 200);
    let (status, _, body) = get(outside.clone(), vec![]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("MEDPORT_METRICS_TOKEN"), "{body}");
    assert!(!body.contains("medport_"), "{body}");
    // Through the reverse proxy on this host, the visitor is elsewhere.
    assert_eq!(get(format!("{address}/metrics"), forwarded()).await.0, 403);
    server.kill().unwrap();
    server.wait().unwrap();

    // With a token: other machines present it.
    let (mut server, address, _log) = serve_with_log(
        &app,
        &[
            ("MEDPORT_BIND", "0.0.0.0:0"),
            ("MEDPORT_METRICS_TOKEN", TOKEN),
        ],
    );
    let port = address.rsplit(':').next().unwrap().to_string();
    let outside = format!("http://{}:{port}/metrics", address_beyond_loopback());
    let (status, challenge, body) = get(outside.clone(), vec![]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer realm=\"medport metrics\"")
    );
    let wrong = format!("Bearer {}", TOKEN.replace('0', "1"));
    assert_eq!(
        get(outside.clone(), vec![("Authorization", wrong)]).await.0,
        401
    );
    let (status, _, body) = get(
        outside.clone(),
        vec![("Authorization", format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("medport_build_info"), "{body}");
    // An API key is not the metrics token: no side door.
    let user = app.create_user("reader@example.org", "uploader", PASSWORD);
    let key = app.create_api_key(&user, "read");
    assert_eq!(
        get(outside, vec![("Authorization", format!("Bearer {key}"))])
            .await
            .0,
        401
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn every_request_class_is_counted_with_its_status() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (mut server, address, _log) = serve_with_log(&app, &[]);
    let client = reqwest::Client::new();
    let before = Metrics::scrape(&client, &address).await;
    let statuses: HashMap<&str, u16> = [
        ("/healthz", 200),
        ("/login", 200),
        ("/no/such/page", 404),
        ("/api/v1/uploads", 401),
    ]
    .into_iter()
    .collect();
    for (path, status) in &statuses {
        let res = client.get(format!("{address}{path}")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), *status, "{path}");
    }
    let after = Metrics::scrape(&client, &address).await;
    for (route, status) in [
        ("health", "200"),
        ("auth", "200"),
        ("page", "404"),
        ("api", "401"),
    ] {
        let labels = [("route", route), ("status", status)];
        let was = before.value_or_zero("medport_http_requests_total", &labels);
        assert_eq!(
            after.value("medport_http_requests_total", &labels) - was,
            1.0,
            "{route} {status}"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
