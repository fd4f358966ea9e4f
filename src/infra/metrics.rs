//! The process's Prometheus metrics, through the `prometheus` crate. One registry per
//! process: a second instance is a second process with its own numbers, as Prometheus
//! expects. Labels take values from fixed sets only (route classes, status codes, refusal
//! reasons), never from a request: no file name, path, address or user reaches a label.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub bytes_uploaded: IntCounter,
    pub bytes_downloaded: IntCounter,
    pub uploads_started: IntCounter,
    pub uploads_completed: IntCounter,
    pub uploads_refused: IntCounterVec,
    pub uploads_quarantined: IntCounter,
    pub uploads_expired: IntCounter,
    pub parts_in_flight: IntGauge,
    pub part_budget_bytes: IntGaugeVec,
    pub part_budget_overdrafts: IntCounter,
    pub db_connections: IntGaugeVec,
    pub db_waiting: IntGauge,
    pub queue_length: IntGaugeVec,
}

/// Why an upload was refused: the label values of `medport_uploads_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The bucket does not exist for this user.
    BucketNotVisible,
    /// The bucket does not take this file type.
    TypeNotAllowed,
    /// The bucket's size limit has no room for it.
    BucketFull,
    /// Its bytes are not what its name says (or not DICOM, for an unnamed file).
    Content,
    /// Storage did not hold what was sent.
    Verification,
    /// The SHA-256 the client declared does not match.
    Checksum,
}

impl Refused {
    pub const ALL: [Self; 6] = [
        Self::BucketNotVisible,
        Self::TypeNotAllowed,
        Self::BucketFull,
        Self::Content,
        Self::Verification,
        Self::Checksum,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BucketNotVisible => "bucket_not_visible",
            Self::TypeNotAllowed => "type_not_allowed",
            Self::BucketFull => "bucket_full",
            Self::Content => "content",
            Self::Verification => "verification",
            Self::Checksum => "checksum",
        }
    }
}

/// The label values of the queue gauge.
pub const QUEUES: [&str; 2] = ["scan", "cleanup"];

/// Request latency buckets, in seconds: pages answer in milliseconds, uploads' parts in
/// seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "medport_http_requests_total",
                    "HTTP requests answered, by route class and status code.",
                ),
                &["route", "status"],
            )
            .unwrap_or_else(|e| unreachable_metric(&e)),
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "medport_http_request_duration_seconds",
                    "Time to answer an HTTP request, by route class.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )
            .unwrap_or_else(|e| unreachable_metric(&e)),
            bytes_uploaded: counter(
                "medport_uploaded_bytes_total",
                "File bytes received and stored by uploads.",
            ),
            bytes_downloaded: counter(
                "medport_downloaded_bytes_total",
                "File bytes sent by downloads, study archives and WADO-RS.",
            ),
            uploads_started: counter("medport_uploads_started_total", "Uploads created."),
            uploads_completed: counter(
                "medport_uploads_completed_total",
                "Uploads whose every byte is stored and verified.",
            ),
            uploads_refused: IntCounterVec::new(
                Opts::new(
                    "medport_uploads_refused_total",
                    "Uploads refused, by reason.",
                ),
                &["reason"],
            )
            .unwrap_or_else(|e| unreachable_metric(&e)),
            uploads_quarantined: counter(
                "medport_uploads_quarantined_total",
                "Uploads quarantined: infected, or they could not be scanned.",
            ),
            uploads_expired: counter(
                "medport_uploads_expired_total",
                "Unfinished uploads expired and cleaned up.",
            ),
            parts_in_flight: gauge(
                "medport_parts_in_flight",
                "Upload parts being sent to storage right now.",
            ),
            part_budget_bytes: IntGaugeVec::new(
                Opts::new(
                    "medport_part_buffer_bytes",
                    "The part-buffer budget shared by all uploads: its size and what is in use.",
                ),
                &["state"],
            )
            .unwrap_or_else(|e| unreachable_metric(&e)),
            part_budget_overdrafts: counter(
                "medport_part_buffer_overdrafts_total",
                "Parts filled outside the part-buffer budget after waiting for it too long.",
            ),
            db_connections: IntGaugeVec::new(
                Opts::new(
                    "medport_db_pool_connections",
                    "Database pool connections, in use and idle.",
                ),
                &["state"],
            )
            .unwrap_or_else(|e| unreachable_metric(&e)),
            db_waiting: gauge(
                "medport_db_pool_waiting",
                "Callers waiting for a database connection.",
            ),
            queue_length: IntGaugeVec::new(
                Opts::new(
                    "medport_queue_length",
                    "Uploads waiting for the scanner and for cleanup.",
                ),
                &["queue"],
            )
            .unwrap_or_else(|e| unreachable_metric(&e)),
            registry,
        };
        let build = IntGaugeVec::new(
            Opts::new("medport_build_info", "The running build (always 1)."),
            &["version"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Every labelled series exists from the start, so a rate never begins mid-series.
        for reason in Refused::ALL {
            metrics
                .uploads_refused
                .with_label_values(&[reason.as_str()]);
        }
        for queue in QUEUES {
            metrics.queue_length.with_label_values(&[queue]);
        }
        let collectors: [Box<dyn prometheus::core::Collector>; 16] = [
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_duration.clone()),
            Box::new(metrics.bytes_uploaded.clone()),
            Box::new(metrics.bytes_downloaded.clone()),
            Box::new(metrics.uploads_started.clone()),
            Box::new(metrics.uploads_completed.clone()),
            Box::new(metrics.uploads_refused.clone()),
            Box::new(metrics.uploads_quarantined.clone()),
            Box::new(metrics.uploads_expired.clone()),
            Box::new(metrics.parts_in_flight.clone()),
            Box::new(metrics.part_budget_bytes.clone()),
            Box::new(metrics.part_budget_overdrafts.clone()),
            Box::new(metrics.db_connections.clone()),
            Box::new(metrics.db_waiting.clone()),
            Box::new(metrics.queue_length.clone()),
            Box::new(build),
        ];
        for collector in collectors {
            if let Err(e) = metrics.registry.register(collector) {
                unreachable_metric(&e);
            }
        }
        metrics
    }

    pub fn refused(&self, reason: Refused) {
        self.uploads_refused
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only for malformed metric families, which the fixed
        // definitions above never are.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A part being sent: counted while it lives.
pub struct PartInFlight(());

impl PartInFlight {
    pub fn start() -> Self {
        metrics().parts_in_flight.inc();
        Self(())
    }
}

impl Drop for PartInFlight {
    fn drop(&mut self) {
        metrics().parts_in_flight.dec();
    }
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).unwrap_or_else(|e| unreachable_metric(&e))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).unwrap_or_else(|e| unreachable_metric(&e))
}

/// The definitions are constants: an error here is a programming error caught by the
/// first test that renders the metrics.
#[allow(clippy::panic)]
fn unreachable_metric(e: &prometheus::Error) -> ! {
    panic!("invalid metric definition: {e}")
}
