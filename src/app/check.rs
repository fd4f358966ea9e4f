//! `medport check`: the configuration and everything it points at, one finding per line
//! with what to do about it. It only looks: it never creates the data directory, the key
//! or the database, and applies no migration. The one write is each bucket's test object,
//! written, read back and deleted the way "Test connection" does.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use crate::app::buckets::opener::{Opener, StepState};
use crate::app::buckets::{self, size};
use crate::config::{DatabaseSettings, MasterKeySource, Settings};
use crate::infra::clamd::{ClamdClient, ClamdTimeouts};
use crate::infra::crypto::keys::MasterKey;
use crate::infra::data_dir;
use crate::infra::db::Database;

/// Below this much free space in the data directory, uploads and the database are at risk.
pub const DEFAULT_MIN_FREE: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Not a fault, but worth knowing (a part that is switched off).
    Note,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub verdict: Verdict,
    pub subject: String,
    pub detail: String,
    /// What to do; every failure has one.
    pub fix: Option<String>,
}

impl Finding {
    fn pass(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Pass,
            subject: subject.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(subject: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Fail,
            subject: subject.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn note(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Note,
            subject: subject.into(),
            detail: detail.into(),
            fix: None,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.verdict {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Note => "–",
        };
        write!(f, "{mark} {}: {}", self.subject, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.verdict != Verdict::Fail)
    }

    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }
}

pub struct Options {
    pub min_free: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_free: DEFAULT_MIN_FREE,
        }
    }
}

/// A configuration that did not load: the one finding there is.
pub fn unreadable_configuration(reason: &str) -> Report {
    Report {
        findings: vec![Finding::fail(
            "configuration",
            reason,
            "correct the setting named above in the environment or medport.toml",
        )],
    }
}

pub async fn run(settings: Settings, options: &Options) -> Report {
    let mut report = Report::default();
    report.push(Finding::pass(
        "configuration",
        format!(
            "loaded ({} database, data directory {})",
            settings.database.backend_name(),
            settings.data_dir.display()
        ),
    ));
    report.push(data_directory(&settings.data_dir, options.min_free));
    let (key, finding) = master_key(&settings.master_key);
    report.push(finding);
    let settings = Arc::new(settings);
    let db = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || database(&settings.database))
            .await
            .unwrap_or_else(|_| {
                Err(Finding::fail(
                    "database",
                    "the check stopped",
                    "run it again",
                ))
            })
    };
    match db {
        Ok((db, finding)) => {
            report.push(finding);
            if let Some(finding) = maintenance(&db).await {
                report.push(finding);
            }
            match key {
                Some(key) => {
                    for finding in buckets(db, settings.clone(), key).await {
                        report.push(finding);
                    }
                }
                None => report.push(Finding::fail(
                    "buckets",
                    "not checked: their credentials open only with the master key",
                    "fix the master key first",
                )),
            }
        }
        Err(finding) => {
            report.push(finding);
            report.push(Finding::fail(
                "buckets",
                "not checked: they are listed in the database",
                "fix the database first",
            ));
        }
    }
    report.push(clamd(settings.uploads.clamd.as_deref()).await);
    report.push(single_sign_on(&settings).await);
    report.push(smtp(&settings).await);
    report.push(public_url(&settings));
    report
}

async fn single_sign_on(settings: &Settings) -> Finding {
    const SUBJECT: &str = "single sign-on";
    let (Some(oidc), Some(public)) = (&settings.oidc, &settings.public_url) else {
        return Finding::note(
            SUBJECT,
            "not set (MEDPORT_OIDC_ISSUER): password sign-in only",
        );
    };
    let provider = match crate::infra::oidc::Provider::new(oidc.clone(), public.as_str()) {
        Ok(provider) => provider,
        Err(e) => {
            return Finding::fail(
                SUBJECT,
                e.to_string(),
                "install the system's CA certificates (ca-certificates)",
            );
        }
    };
    match provider.probe().await {
        Ok(found) => Finding::pass(SUBJECT, found),
        Err(e) => Finding::fail(
            SUBJECT,
            e.to_string(),
            "check MEDPORT_OIDC_ISSUER (its /.well-known/openid-configuration must answer from this server) and the network path to the provider",
        ),
    }
}

/// Connects to the SMTP server as the worker would (TLS, sign-in), without sending mail.
/// The line names the server and the sender, never the password.
async fn smtp(settings: &Settings) -> Finding {
    const SUBJECT: &str = "e-mail (SMTP)";
    let Some(smtp) = &settings.smtp else {
        return Finding::note(
            SUBJECT,
            "not set (MEDPORT_SMTP_URL, MEDPORT_SMTP_FROM): e-mail stays queued, listed on /admin/notifications",
        );
    };
    let shown = smtp.describe();
    let probe = async {
        let mailer =
            crate::infra::smtp::Mailer::new(smtp, None, settings.notifications.smtp_timeout)?;
        mailer.probe().await
    };
    match probe.await {
        Ok(()) => Finding::pass(SUBJECT, format!("{shown}: the server answers")),
        Err(e) => Finding::fail(
            SUBJECT,
            format!("{shown}: {e}"),
            "check MEDPORT_SMTP_URL (host, port, tls option, user name and password) and the network path to the server; queued e-mail waits until it answers",
        ),
    }
}

fn data_directory(dir: &Path, min_free: u64) -> Finding {
    const SUBJECT: &str = "data directory";
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => {
            return Finding::fail(
                SUBJECT,
                format!("{shown} is not a directory"),
                "point MEDPORT_DATA_DIR at a directory",
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Finding::fail(
                SUBJECT,
                format!("{shown} does not exist yet"),
                "run `medport migrate` (or start medport once) to create it",
            );
        }
        Err(e) => {
            return Finding::fail(
                SUBJECT,
                format!("{shown} cannot be read ({e})"),
                "run medport as the account that owns the data directory",
            );
        }
    };
    let mode = meta.mode() & 0o7777;
    if data_dir::open_to_others(mode) {
        return Finding::fail(
            SUBJECT,
            format!("{shown} is open to other users (mode {mode:o})"),
            format!("chmod 700 {shown}"),
        );
    }
    if !owned_by_this_account(&meta) {
        return Finding::fail(
            SUBJECT,
            format!("{shown} belongs to another account (uid {})", meta.uid()),
            "run medport as the account that owns the data directory",
        );
    }
    match data_dir::free_bytes(dir) {
        Ok(free) if free < min_free => Finding::fail(
            SUBJECT,
            format!(
                "{shown}: only {} free (at least {} wanted)",
                size::human(free),
                size::human(min_free)
            ),
            "free space on that disk or move the data directory to a larger one",
        ),
        Ok(free) => Finding::pass(
            SUBJECT,
            format!(
                "{shown} is private (mode {mode:o}); {} free",
                size::human(free)
            ),
        ),
        Err(e) => Finding::fail(
            SUBJECT,
            format!("cannot tell the free space of {shown} ({e})"),
            "check that the data directory's file system is mounted",
        ),
    }
}

fn owned_by_this_account(meta: &std::fs::Metadata) -> bool {
    meta.uid() == rustix::process::geteuid().as_raw()
}

/// The key when it loads, and its line.
fn master_key(source: &MasterKeySource) -> (Option<Arc<MasterKey>>, Finding) {
    const SUBJECT: &str = "master key";
    let (path, origin) = match source {
        MasterKeySource::Inline(_) => {
            return match MasterKey::load_existing(source) {
                Ok(key) => (
                    Some(Arc::new(key)),
                    Finding::pass(
                        SUBJECT,
                        "from MEDPORT_MASTER_KEY (keep the service's environment file 0600)",
                    ),
                ),
                Err(e) => (
                    None,
                    Finding::fail(
                        SUBJECT,
                        e.to_string(),
                        "set MEDPORT_MASTER_KEY to the 64 hexadecimal characters of the key",
                    ),
                ),
            };
        }
        MasterKeySource::File(path) => (path, "MEDPORT_MASTER_KEY_FILE"),
        MasterKeySource::DataDir(path) => (path, "the data directory"),
    };
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (None, Finding::fail(
                SUBJECT,
                format!("{shown} does not exist"),
                match source {
                    MasterKeySource::DataDir(_) => {
                        "start medport once (or run `medport migrate`) to create it; if it existed before, restore it from the backup: without it no sealed secret opens".to_string()
                    }
                    _ => format!("restore the key file named by {origin} from the backup"),
                },
            ));
        }
        Err(e) => {
            return (
                None,
                Finding::fail(
                    SUBJECT,
                    format!("{shown} cannot be read ({e})"),
                    "run medport as the account that owns the key file",
                ),
            );
        }
    };
    let mode = meta.mode() & 0o7777;
    if data_dir::open_to_others(mode) {
        return (
            None,
            Finding::fail(
                SUBJECT,
                format!("{shown} is readable by other users (mode {mode:o})"),
                format!(
                    "chmod 600 {shown}, then rotate the key (`medport keys rotate`) if others could have read it"
                ),
            ),
        );
    }
    if !owned_by_this_account(&meta) {
        return (
            None,
            Finding::fail(
                SUBJECT,
                format!("{shown} belongs to another account (uid {})", meta.uid()),
                "chown the key file to the account medport runs as",
            ),
        );
    }
    match MasterKey::load_existing(source) {
        Ok(key) => (
            Some(Arc::new(key)),
            Finding::pass(SUBJECT, format!("{shown} (mode {mode:o}, from {origin})")),
        ),
        Err(e) => (
            None,
            Finding::fail(
                SUBJECT,
                e.to_string(),
                "restore the key file from the backup",
            ),
        ),
    }
}

fn database(settings: &DatabaseSettings) -> Result<(Database, Finding), Finding> {
    const SUBJECT: &str = "database";
    let described = match settings {
        DatabaseSettings::Sqlite { path } => {
            // Opening would create an empty database: look first.
            if !path.exists() {
                return Err(Finding::fail(
                    SUBJECT,
                    format!("no SQLite database at {}", path.display()),
                    "run `medport migrate` to create it, or restore it from the backup",
                ));
            }
            format!("SQLite {}", path.display())
        }
        DatabaseSettings::Postgres { .. } => "PostgreSQL".to_string(),
    };
    let db = Database::open(settings, 2).map_err(|e| {
        Finding::fail(
            SUBJECT,
            format!("cannot connect to {described}: {e}"),
            "check DATABASE_URL and that the database server is running",
        )
    })?;
    match db.pending_migrations() {
        Ok(pending) if pending.is_empty() => Ok((
            db,
            Finding::pass(SUBJECT, format!("{described} answers; schema is current")),
        )),
        Ok(pending) => Err(Finding::fail(
            SUBJECT,
            format!(
                "{described} answers, but {} migration(s) are not applied: {}",
                pending.len(),
                pending.join(", ")
            ),
            "run `medport migrate` (every instance applies them at start too)",
        )),
        Err(e) => Err(Finding::fail(
            SUBJECT,
            format!("cannot read the schema version of {described}: {e}"),
            "check that DATABASE_URL names medport's database",
        )),
    }
}

/// PostgreSQL's planner needs fresh statistics: without autovacuum the history and study
/// pages slow down as the tables grow (docs/PERFORMANCE.md has the figures).
async fn maintenance(db: &Database) -> Option<Finding> {
    const SUBJECT: &str = "database maintenance";
    let on = db.run(crate::infra::db::repo::server::autovacuum).await;
    match on {
        Ok(None) => None,
        Ok(Some(true)) => Some(Finding::pass(SUBJECT, "PostgreSQL's autovacuum is on")),
        Ok(Some(false)) => Some(Finding::note(
            SUBJECT,
            "PostgreSQL's autovacuum is off: unless VACUUM ANALYZE runs on a schedule, the planner's statistics go stale and pages slow down as uploads grow (set autovacuum = on)",
        )),
        Err(e) => Some(Finding::fail(
            SUBJECT,
            format!("cannot read the autovacuum setting: {e}"),
            "check that the database user may run current_setting()",
        )),
    }
}

async fn buckets(db: Database, settings: Arc<Settings>, key: Arc<MasterKey>) -> Vec<Finding> {
    let keyring = match crate::app::key_rotation::keyring(key, &settings.master_key) {
        Ok(ring) => Arc::new(ring),
        Err(e) => {
            return vec![Finding::fail(
                "buckets",
                format!("the previous master keys cannot be read: {e}"),
                "restore the old key files beside the master key from the backup",
            )];
        }
    };
    let listed = db.run(buckets::queries::all).await;
    let all = match listed {
        Ok(all) => all,
        Err(e) => {
            return vec![Finding::fail(
                "buckets",
                format!("cannot list them: {e}"),
                "check the database",
            )];
        }
    };
    let opener = Opener {
        db,
        settings,
        keyring,
    };
    let mut findings = Vec::with_capacity(all.len());
    for bucket in all {
        let subject = format!(
            "bucket \"{}\" ({})",
            bucket.display_name.escape_debug(),
            bucket.location().escape_debug()
        );
        let steps = opener.test_connection(&bucket).await;
        findings.push(match steps.iter().find(|s| s.state == StepState::Failed) {
            None => Finding::pass(
                subject,
                "reached; a test object was written, read back and deleted",
            ),
            Some(step) => Finding::fail(
                subject,
                format!("{}: {}", step.label, step.detail),
                match bucket.backend {
                    buckets::Backend::Local => {
                        "check that the data directory's objects folder is writable by medport"
                            .to_string()
                    }
                    buckets::Backend::S3 => format!(
                        "check the endpoint, credentials and bucket policy under Admin › Buckets › {}",
                        bucket.display_name.escape_debug()
                    ),
                },
            ),
        });
    }
    findings
}

async fn clamd(addr: Option<&str>) -> Finding {
    const SUBJECT: &str = "clamd";
    let Some(addr) = addr else {
        return Finding::note(
            SUBJECT,
            "not set (MEDPORT_CLAMD): uploads are stored without a virus scan",
        );
    };
    let timeouts = ClamdTimeouts {
        connect: std::time::Duration::from_secs(3),
        write: std::time::Duration::from_secs(3),
        read: std::time::Duration::from_secs(5),
    };
    match ClamdClient::new(addr.to_string(), timeouts).ping().await {
        Ok(()) => Finding::pass(SUBJECT, format!("{addr} answers PING")),
        Err(e) => Finding::fail(
            SUBJECT,
            format!("{addr}: {e}"),
            "start clamd (systemctl start clamav-daemon) or correct MEDPORT_CLAMD; until then completed files are quarantined as not scanned",
        ),
    }
}

fn public_url(settings: &Settings) -> Finding {
    const SUBJECT: &str = "public URL";
    let listens_beyond_host = !settings.bind.ip().is_loopback();
    match &settings.public_url {
        Some(url) if url.is_https() => {
            if settings.trusted_proxies.is_empty() && !listens_beyond_host {
                // TLS ends in front of a loopback listener: a proxy on this host.
                Finding::fail(
                    SUBJECT,
                    format!(
                        "{} with HSTS, but no trusted proxy is set: every client looks like the proxy to rate limits and the audit trail",
                        url.as_str()
                    ),
                    "set MEDPORT_TRUSTED_PROXIES to the reverse proxy's address (127.0.0.1)",
                )
            } else {
                Finding::pass(SUBJECT, format!("{}; HSTS is sent", url.as_str()))
            }
        }
        Some(url) if url.is_loopback() => Finding::pass(
            SUBJECT,
            format!(
                "{} (this machine only; no HSTS without https)",
                url.as_str()
            ),
        ),
        Some(url) => Finding::fail(
            SUBJECT,
            format!(
                "{} is not https: passwords and files cross the network in clear, and HSTS is off",
                url.as_str()
            ),
            "put medport behind TLS (deploy/nginx or deploy/caddy) and set MEDPORT_PUBLIC_URL=https://…",
        ),
        None if listens_beyond_host => Finding::fail(
            SUBJECT,
            format!(
                "not set, and medport listens on {} for other machines without TLS",
                settings.bind
            ),
            "bind to 127.0.0.1 behind a TLS proxy (deploy/) and set MEDPORT_PUBLIC_URL=https://…",
        ),
        None => Finding::note(
            SUBJECT,
            format!(
                "not set; fine while medport is reached only from this machine (http://{})",
                settings.bind
            ),
        ),
    }
}
