//! Settings: built-in defaults, then `medport.toml` (optional), then `MEDPORT_*` / `DATABASE_URL`
//! environment variables. Everything is validated here, once, at start-up; the rest of the
//! program only sees typed values. Secrets are wrapped so they never reach a log line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod buckets;
mod notifications;
mod oidc;
mod rate_limits;
mod uploads;

pub use buckets::{DefaultBucket, SystemS3};
pub use notifications::{NotificationSettings, Sender, SmtpServer, SmtpSettings, SmtpTls};
pub use oidc::{CALLBACK_PATH, OidcSettings, PasswordSignIn, RoleMapping};
pub use rate_limits::RateLimits;
pub use uploads::{QuarantineAction, UploadSettings};

/// Start-up refuses to run on a bad setting; the message names the setting (never its value
/// when the value may be secret).
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    pub setting: String,
    pub reason: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum DatabaseSettings {
    Sqlite { path: PathBuf },
    Postgres { url: SecretString },
}

impl DatabaseSettings {
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgresql",
        }
    }
}

#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `MEDPORT_MASTER_KEY`: 64 hex characters.
    Inline(SecretString),
    /// `MEDPORT_MASTER_KEY_FILE`: must already exist.
    File(PathBuf),
    /// `<data dir>/master.key`, created (0600) on first start.
    DataDir(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct PublicUrl(url::Url);

impl PublicUrl {
    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// `scheme://host[:port]`, as browsers send it in the `Origin` header.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// `localhost` or a loopback address: a URL only this machine can use.
    pub fn is_loopback(&self) -> bool {
        match self.0.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub public_url: Option<PublicUrl>,
    pub master_key: MasterKeySource,
    pub log_format: LogFormat,
    pub db_pool_size: u32,
    pub session: SessionSettings,
    /// bcrypt work factor. Only tests lower it; configuration cannot go below 12.
    pub bcrypt_cost: u32,
    /// HTTP worker threads; by default one per core.
    pub workers: Option<usize>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (client address for rate limits,
    /// audit and session lists). Empty: the socket peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub rate_limits: RateLimits,
    /// Bucket endpoints on this host (an S3 server on loopback) are allowed. Off by default:
    /// an admin form must not make the server call itself (SSRF).
    pub allow_loopback_endpoints: bool,
    /// Where the system default bucket stores objects (local store unless `MEDPORT_S3_*`).
    pub default_bucket: DefaultBucket,
    /// Every uploader may use the system default bucket without a grant.
    pub default_bucket_open_to_all: bool,
    pub uploads: UploadSettings,
    /// The configuration file that was read, so hints can name it.
    pub config_file: Option<PathBuf>,
    /// Bearer token that opens `/metrics` to other machines (loopback needs none).
    pub metrics_token: Option<SecretString>,
    /// Single sign-on, when an issuer is set.
    pub oidc: Option<OidcSettings>,
    pub password_sign_in: PasswordSignIn,
    /// E-mail, when an SMTP server is set; without one messages stay queued.
    pub smtp: Option<SmtpSettings>,
    pub notifications: NotificationSettings,
}

impl Settings {
    /// Defaults for a data directory: what `medport` runs with when nothing is configured.
    pub fn defaults_for(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: DatabaseSettings::Sqlite {
                path: data_dir.join("medport.db"),
            },
            master_key: MasterKeySource::DataDir(data_dir.join("master.key")),
            data_dir,
            public_url: None,
            log_format: LogFormat::Text,
            db_pool_size: 8,
            session: SessionSettings {
                idle_timeout: Duration::from_secs(30 * 60),
                absolute_timeout: Duration::from_secs(12 * 3600),
            },
            bcrypt_cost: 12,
            workers: None,
            trusted_proxies: Vec::new(),
            rate_limits: RateLimits::default(),
            allow_loopback_endpoints: false,
            default_bucket: DefaultBucket::Local,
            default_bucket_open_to_all: true,
            uploads: UploadSettings::default(),
            config_file: None,
            metrics_token: None,
            oidc: None,
            password_sign_in: PasswordSignIn::All,
            smtp: None,
            notifications: NotificationSettings::default(),
        }
    }

    /// Loads from the process environment and the config file (`--config`, `MEDPORT_CONFIG`,
    /// or `./medport.toml` when it exists).
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("MEDPORT_") || k == "DATABASE_URL")
            .collect();
        Self::load_from(config_file, &env)
    }

    pub fn load_from(
        config_file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let explicit = config_file
            .map(Path::to_path_buf)
            .or_else(|| env.get("MEDPORT_CONFIG").map(PathBuf::from));
        let path = explicit.or_else(|| {
            let default = PathBuf::from("medport.toml");
            default.exists().then_some(default)
        });
        let file = path.as_deref().map(read_file).transpose()?;
        let raw = Raw::merge(file.unwrap_or_default(), env);
        let mut settings = raw.validate()?;
        settings.config_file = path.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
        Ok(settings)
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let setting = format!("config file {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&setting, format!("cannot be read ({e})")))?;
    toml::from_str(&text).map_err(|e| ConfigError::new(&setting, e.message().to_string()))
}

/// The keys `medport.toml` accepts. Unknown keys are an error, so a typo never silently
/// falls back to a default. The master key itself is not accepted in the file: use
/// `master_key_file`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    public_url: Option<String>,
    master_key_file: Option<String>,
    log_format: Option<String>,
    db_pool_size: Option<u32>,
    session_idle_minutes: Option<u64>,
    session_absolute_hours: Option<u64>,
    workers: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    allow_loopback_endpoints: Option<bool>,
    default_bucket_open_to_all: Option<bool>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_bucket: Option<String>,
    s3_access_key_id: Option<String>,
    s3_path_style: Option<bool>,
    s3_sse: Option<String>,
    s3_kms_key_id: Option<String>,
    max_upload_size: Option<u64>,
    upload_expiry_hours: Option<u64>,
    cleanup_interval_seconds: Option<u64>,
    clamd: Option<String>,
    scan_max_size: Option<u64>,
    quarantine: Option<String>,
    upload_buffer_mib: Option<u64>,
    rate_limit_login_per_minute: Option<u64>,
    rate_limit_login_burst: Option<u64>,
    rate_limit_sensitive_per_minute: Option<u64>,
    rate_limit_upload_per_minute: Option<u64>,
    rate_limit_general_per_minute: Option<u64>,
    oidc_issuer: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret_file: Option<String>,
    oidc_scopes: Option<Vec<String>>,
    oidc_roles_claim: Option<String>,
    oidc_admin_values: Option<Vec<String>>,
    oidc_uploader_values: Option<Vec<String>>,
    oidc_auditor_values: Option<Vec<String>>,
    oidc_mfa_amr: Option<Vec<String>>,
    oidc_mfa_acr: Option<Vec<String>>,
    oidc_link_by_email: Option<bool>,
    oidc_clock_skew_seconds: Option<u64>,
    oidc_label: Option<String>,
    password_sign_in: Option<String>,
    break_glass_emails: Option<Vec<String>>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
}

/// One raw value and the name of the place it came from, for error messages.
#[derive(Debug, Clone)]
struct Val {
    value: String,
    origin: String,
}

#[derive(Debug, Default)]
struct Raw {
    bind: Option<Val>,
    data_dir: Option<Val>,
    database_url: Option<Val>,
    public_url: Option<Val>,
    master_key: Option<Val>,
    master_key_file: Option<Val>,
    log_format: Option<Val>,
    db_pool_size: Option<Val>,
    session_idle_minutes: Option<Val>,
    session_absolute_hours: Option<Val>,
    workers: Option<Val>,
    trusted_proxies: Option<Val>,
    metrics_token: Option<Val>,
    storage: buckets::RawStorage,
    uploads: uploads::RawUploads,
    rate_limits: rate_limits::RawRateLimits,
    oidc: oidc::RawOidc,
    smtp: notifications::RawSmtp,
}

impl Raw {
    fn merge(mut file: FileSettings, env: &HashMap<String, String>) -> Self {
        let storage = buckets::RawStorage::merge(&mut file, env);
        let uploads = uploads::RawUploads::merge(&mut file, env);
        let rate_limits = rate_limits::RawRateLimits::merge(&mut file, env);
        let oidc = oidc::RawOidc::merge(&mut file, env);
        let smtp = notifications::RawSmtp::merge(&mut file, env);
        let from_file = |key: &str, v: Option<String>| {
            v.map(|value| Val {
                value,
                origin: format!("{key} (medport.toml)"),
            })
        };
        let over = |current: Option<Val>, var: &str| match env.get(var) {
            Some(value) => Some(Val {
                value: value.clone(),
                origin: var.to_string(),
            }),
            None => current,
        };
        let num = |v: Option<u64>| v.map(|n| n.to_string());
        Self {
            bind: over(from_file("bind", file.bind), "MEDPORT_BIND"),
            data_dir: over(from_file("data_dir", file.data_dir), "MEDPORT_DATA_DIR"),
            database_url: over(from_file("database_url", file.database_url), "DATABASE_URL"),
            public_url: over(
                from_file("public_url", file.public_url),
                "MEDPORT_PUBLIC_URL",
            ),
            master_key: over(None, "MEDPORT_MASTER_KEY"),
            master_key_file: over(
                from_file("master_key_file", file.master_key_file),
                "MEDPORT_MASTER_KEY_FILE",
            ),
            log_format: over(
                from_file("log_format", file.log_format),
                "MEDPORT_LOG_FORMAT",
            ),
            db_pool_size: over(
                from_file("db_pool_size", num(file.db_pool_size.map(u64::from))),
                "MEDPORT_DB_POOL_SIZE",
            ),
            session_idle_minutes: over(
                from_file("session_idle_minutes", num(file.session_idle_minutes)),
                "MEDPORT_SESSION_IDLE_MINUTES",
            ),
            session_absolute_hours: over(
                from_file("session_absolute_hours", num(file.session_absolute_hours)),
                "MEDPORT_SESSION_ABSOLUTE_HOURS",
            ),
            workers: over(from_file("workers", num(file.workers)), "MEDPORT_WORKERS"),
            trusted_proxies: over(
                from_file("trusted_proxies", file.trusted_proxies.map(|v| v.join(","))),
                "MEDPORT_TRUSTED_PROXIES",
            ),
            // A secret: from the environment only, like the master key.
            metrics_token: over(None, "MEDPORT_METRICS_TOKEN"),
            storage,
            uploads,
            rate_limits,
            oidc,
            smtp,
        }
    }

    fn validate(self) -> Result<Settings, ConfigError> {
        let data_dir = match &self.data_dir {
            Some(v) if v.value.trim().is_empty() => {
                return Err(ConfigError::new(&v.origin, "must not be empty"));
            }
            Some(v) => PathBuf::from(&v.value),
            None => PathBuf::from("data"),
        };
        let mut s = Settings::defaults_for(&data_dir);

        if let Some(v) = &self.bind {
            s.bind = v.value.parse().map_err(|_| {
                ConfigError::new(&v.origin, "expected an address like 127.0.0.1:8080")
            })?;
        }
        if let Some(v) = &self.database_url {
            s.database = parse_database_url(v)?;
        }
        if let Some(v) = &self.public_url {
            s.public_url = Some(parse_public_url(v)?);
        }
        match (&self.master_key, &self.master_key_file) {
            (Some(a), Some(_)) => {
                return Err(ConfigError::new(
                    &a.origin,
                    "set either MEDPORT_MASTER_KEY or MEDPORT_MASTER_KEY_FILE, not both",
                ));
            }
            (Some(v), None) => {
                if !is_hex_key(&v.value) {
                    return Err(ConfigError::new(
                        &v.origin,
                        "expected 64 hexadecimal characters (32 bytes)",
                    ));
                }
                s.master_key = MasterKeySource::Inline(SecretString::from(v.value.clone()));
            }
            (None, Some(v)) => {
                if v.value.trim().is_empty() {
                    return Err(ConfigError::new(&v.origin, "must not be empty"));
                }
                s.master_key = MasterKeySource::File(PathBuf::from(&v.value));
            }
            (None, None) => {}
        }
        if let Some(v) = &self.log_format {
            s.log_format = match v.value.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(ConfigError::new(&v.origin, "expected `text` or `json`")),
            };
        }
        if let Some(v) = &self.db_pool_size {
            s.db_pool_size = parse_in_range(v, 1, 64)? as u32;
        }
        if let Some(v) = &self.session_idle_minutes {
            s.session.idle_timeout = Duration::from_secs(parse_in_range(v, 1, 24 * 60)? * 60);
        }
        if let Some(v) = &self.session_absolute_hours {
            s.session.absolute_timeout = Duration::from_secs(parse_in_range(v, 1, 7 * 24)? * 3600);
        }
        if let Some(v) = &self.workers {
            s.workers = Some(parse_in_range(v, 1, 256)? as usize);
        }
        if let Some(v) = &self.metrics_token {
            let token = v.value.trim();
            if token.len() < 32 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    &v.origin,
                    "expected at least 32 printable characters without spaces (openssl rand -hex 32)",
                ));
            }
            s.metrics_token = Some(SecretString::from(token.to_string()));
        }
        if let Some(v) = &self.trusted_proxies {
            s.trusted_proxies = v
                .value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse().map_err(|_| {
                        ConfigError::new(&v.origin, format!("`{p}` is not an IP address"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        self.storage.validate(&mut s)?;
        self.uploads.validate(&mut s)?;
        self.rate_limits.validate(&mut s)?;
        self.oidc.validate(&mut s)?;
        self.smtp.validate(&mut s)?;
        if s.session.idle_timeout > s.session.absolute_timeout {
            let origin = self
                .session_idle_minutes
                .as_ref()
                .map_or("MEDPORT_SESSION_IDLE_MINUTES", |v| v.origin.as_str());
            return Err(ConfigError::new(
                origin,
                "the idle timeout must not be longer than the absolute session lifetime",
            ));
        }
        Ok(s)
    }
}

/// A value from the environment variable `var`, else from the file key `key`, with where it
/// came from (for error messages).
fn pick(
    env: &HashMap<String, String>,
    key: &str,
    file_value: Option<String>,
    var: &str,
) -> Option<Val> {
    match env.get(var) {
        Some(value) => Some(Val {
            value: value.clone(),
            origin: var.to_string(),
        }),
        None => file_value.map(|value| Val {
            value,
            origin: format!("{key} (medport.toml)"),
        }),
    }
}

fn parse_in_range(v: &Val, min: u64, max: u64) -> Result<u64, ConfigError> {
    match v.value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            &v.origin,
            format!("expected a whole number from {min} to {max}"),
        )),
    }
}

fn is_hex_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_database_url(v: &Val) -> Result<DatabaseSettings, ConfigError> {
    let value = v.value.trim();
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        // The URL may hold a password: the error says what is wrong, never the value.
        let parsed = url::Url::parse(value).map_err(|_| {
            ConfigError::new(
                &v.origin,
                "not a valid PostgreSQL URL (postgres://user@host:port/db)",
            )
        })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new(
                &v.origin,
                "the PostgreSQL URL has no host",
            ));
        }
        return Ok(DatabaseSettings::Postgres {
            url: SecretString::from(value.to_string()),
        });
    }
    let path = value
        .strip_prefix("sqlite://")
        .or_else(|| value.strip_prefix("sqlite:"))
        .unwrap_or(value);
    if path.is_empty() || path.contains("://") {
        return Err(ConfigError::new(
            &v.origin,
            "expected postgres://... or a SQLite file path (sqlite://data/medport.db)",
        ));
    }
    if path == ":memory:" {
        return Err(ConfigError::new(
            &v.origin,
            "an in-memory database would lose every record at exit; use a file path",
        ));
    }
    Ok(DatabaseSettings::Sqlite {
        path: PathBuf::from(path),
    })
}

fn parse_public_url(v: &Val) -> Result<PublicUrl, ConfigError> {
    let url = url::Url::parse(v.value.trim()).map_err(|_| {
        ConfigError::new(&v.origin, "expected a URL like https://medport.example.org")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            &v.origin,
            "the scheme must be http or https",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(&v.origin, "the URL has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(ConfigError::new(
            &v.origin,
            "the URL must not contain credentials, a query or a fragment",
        ));
    }
    Ok(PublicUrl(url))
}

/// Used by `medport` to show the effective configuration without secrets.
pub fn describe(settings: &Settings) -> Vec<(String, String)> {
    let db = match &settings.database {
        DatabaseSettings::Sqlite { path } => format!("sqlite {}", path.display()),
        DatabaseSettings::Postgres { url } => {
            // Host and database name only; user and password stay hidden.
            url::Url::parse(url.expose_secret())
                .map(|u| format!("postgresql {}{}", u.host_str().unwrap_or(""), u.path()))
                .unwrap_or_else(|_| "postgresql".into())
        }
    };
    vec![
        ("bind".into(), settings.bind.to_string()),
        ("data_dir".into(), settings.data_dir.display().to_string()),
        ("database".into(), db),
        (
            "public_url".into(),
            settings
                .public_url
                .as_ref()
                .map_or_else(|| "(not set)".into(), |u| u.as_str().to_string()),
        ),
        ("default_bucket".into(), buckets::describe(settings)),
        (
            "max_upload_size".into(),
            settings.uploads.max_size.to_string(),
        ),
        (
            "clamd".into(),
            settings
                .uploads
                .clamd
                .clone()
                .unwrap_or_else(|| "(scanning off)".into()),
        ),
        (
            "metrics".into(),
            if settings.metrics_token.is_some() {
                "this machine, or with the bearer token".into()
            } else {
                "this machine only".into()
            },
        ),
        (
            "single_sign_on".into(),
            settings.oidc.as_ref().map_or_else(
                || "(off)".into(),
                |o| format!("{} (client {})", o.issuer, o.client_id),
            ),
        ),
        (
            "smtp".into(),
            settings.smtp.as_ref().map_or_else(
                || "(off: e-mail stays queued)".into(),
                SmtpSettings::describe,
            ),
        ),
        (
            "password_sign_in".into(),
            match &settings.password_sign_in {
                PasswordSignIn::All => "every account".into(),
                PasswordSignIn::BreakGlass(emails) => {
                    format!("break-glass accounts only ({})", emails.len())
                }
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The error of loading `pairs` over an empty config file.
    fn err(pairs: &[(&str, &str)]) -> ConfigError {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("medport.toml");
        std::fs::write(&file, "").unwrap();
        match Settings::load_from(Some(&file), &env(pairs)) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        }
    }

    fn load(pairs: &[(&str, &str)]) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("medport.toml");
        std::fs::write(&file, "").unwrap();
        Settings::load_from(Some(&file), &env(pairs)).unwrap()
    }

    #[test]
    fn defaults_run_with_zero_setup() {
        let s = load(&[]);
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert!(
            matches!(&s.database, DatabaseSettings::Sqlite { path } if path == Path::new("data/medport.db"))
        );
        assert!(
            matches!(&s.master_key, MasterKeySource::DataDir(p) if p == Path::new("data/master.key"))
        );
        assert_eq!(s.session.idle_timeout, Duration::from_secs(1800));
    }

    #[test]
    fn the_upload_buffer_is_whole_mebibytes_in_range() {
        assert_eq!(load(&[]).uploads.part_buffer, 64 << 20);
        let s = load(&[("MEDPORT_UPLOAD_BUFFER_MIB", "256")]);
        assert_eq!(s.uploads.part_buffer, 256 << 20);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("medport.toml");
        std::fs::write(&file, "").unwrap();
        for bad in ["0", "7", "65537", "lots", "-8"] {
            let loaded =
                Settings::load_from(Some(&file), &env(&[("MEDPORT_UPLOAD_BUFFER_MIB", bad)]));
            let Err(e) = loaded else {
                panic!("{bad} was accepted")
            };
            assert!(
                e.to_string().contains("MEDPORT_UPLOAD_BUFFER_MIB"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "bind = \"127.0.0.1:9000\"\ndb_pool_size = 3\n").unwrap();
        let s =
            Settings::load_from(Some(&file), &env(&[("MEDPORT_BIND", "0.0.0.0:9100")])).unwrap();
        assert_eq!(s.bind.to_string(), "0.0.0.0:9100");
        assert_eq!(s.db_pool_size, 3);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let missing = Path::new("/nonexistent/none.toml");
        assert_eq!(
            Settings::load_from(Some(missing), &env(&[("MEDPORT_BIND", "nope")]))
                .unwrap_err()
                .setting,
            "config file /nonexistent/none.toml"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "").unwrap();
        let e = |pairs: &[(&str, &str)]| Settings::load_from(Some(&file), &env(pairs)).unwrap_err();
        assert_eq!(e(&[("MEDPORT_BIND", "nope")]).setting, "MEDPORT_BIND");
        assert_eq!(
            e(&[("MEDPORT_LOG_FORMAT", "xml")]).setting,
            "MEDPORT_LOG_FORMAT"
        );
        assert_eq!(
            e(&[("MEDPORT_DB_POOL_SIZE", "0")]).setting,
            "MEDPORT_DB_POOL_SIZE"
        );
        assert_eq!(
            e(&[("MEDPORT_PUBLIC_URL", "ftp://x")]).setting,
            "MEDPORT_PUBLIC_URL"
        );
        assert_eq!(
            e(&[("MEDPORT_MASTER_KEY", "short")]).setting,
            "MEDPORT_MASTER_KEY"
        );
        assert_eq!(e(&[("DATABASE_URL", ":memory:")]).setting, "DATABASE_URL");
        assert_eq!(
            e(&[
                ("MEDPORT_SESSION_IDLE_MINUTES", "120"),
                ("MEDPORT_SESSION_ABSOLUTE_HOURS", "1")
            ])
            .setting,
            "MEDPORT_SESSION_IDLE_MINUTES"
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "bnid = \"127.0.0.1:1\"\n").unwrap();
        let e = Settings::load_from(Some(&file), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("bnid"), "{e}");
    }

    /// A PostgreSQL on the same server is reached over its Unix socket: libpq takes the
    /// socket's directory, percent-encoded, as the URL's host.
    #[test]
    fn a_postgres_unix_socket_is_a_database_url() {
        let url = "postgres://medport@%2Fvar%2Frun%2Fpostgresql/medport";
        let s = load(&[("DATABASE_URL", url)]);
        assert!(matches!(s.database, DatabaseSettings::Postgres { .. }));
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let pw = "sup3r-secret-pw";
        let e = err(&[("DATABASE_URL", "postgres://u:sup3r-secret-pw@")]);
        assert!(!e.to_string().contains(pw));
        let key = "ab".repeat(32);
        let s = load(&[
            ("MEDPORT_MASTER_KEY", &key),
            ("DATABASE_URL", "postgres://u:sup3r-secret-pw@db/x"),
        ]);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(pw) && !dbg.contains(&key), "{dbg}");
        let shown = format!("{:?}", describe(&s));
        assert!(!shown.contains(pw), "{shown}");
    }

    const SSO: [(&str, &str); 5] = [
        ("MEDPORT_PUBLIC_URL", "https://medport.example.org"),
        (
            "MEDPORT_OIDC_ISSUER",
            "https://login.example.org/realms/hospital",
        ),
        ("MEDPORT_OIDC_CLIENT_ID", "medport"),
        ("MEDPORT_OIDC_CLIENT_SECRET", "oidc-client-s3cret"),
        ("MEDPORT_OIDC_UPLOADER_VALUES", "clinicians, radiology"),
    ];

    #[test]
    fn single_sign_on_settings_are_typed_and_the_secret_never_shown() {
        let s = load(&SSO);
        let oidc = s.oidc.clone().unwrap();
        assert_eq!(oidc.client_id, "medport");
        assert_eq!(oidc.scopes, ["email", "profile"]);
        assert_eq!(oidc.roles_claim, "groups");
        assert!(oidc.roles.uploader.contains("radiology"));
        assert_eq!(oidc.clock_skew, Duration::from_secs(30));
        assert!(!oidc.link_by_email);
        let shown = format!("{s:?} {:?}", describe(&s));
        assert!(!shown.contains("oidc-client-s3cret"), "{shown}");

        // From a file instead; both at once is refused.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let path = file.display().to_string();
        let mut from_file: Vec<(&str, &str)> = SSO[..3].to_vec();
        from_file.push(("MEDPORT_OIDC_UPLOADER_VALUES", "clinicians"));
        from_file.push(("MEDPORT_OIDC_CLIENT_SECRET_FILE", &path));
        let s = load(&from_file);
        assert_eq!(s.oidc.unwrap().client_secret.expose_secret(), "from-a-file");
        let mut both = SSO.to_vec();
        both.push(("MEDPORT_OIDC_CLIENT_SECRET_FILE", &path));
        let e = err(&both).to_string();
        assert!(
            e.contains("not both") && !e.contains("oidc-client-s3cret"),
            "{e}"
        );
    }

    #[test]
    fn single_sign_on_refuses_what_would_leave_nobody_able_to_sign_in() {
        // No role mapping.
        let e = err(&SSO[..4]).to_string();
        assert!(e.contains("ADMIN_VALUES"), "{e}");
        // No public URL for the redirect.
        let e = err(&SSO[1..]).to_string();
        assert!(e.contains("MEDPORT_PUBLIC_URL"), "{e}");
        // Plain http to another machine.
        let mut plain = SSO.to_vec();
        plain[1] = ("MEDPORT_OIDC_ISSUER", "http://login.example.org");
        assert_eq!(err(&plain).setting, "MEDPORT_OIDC_ISSUER");
        // Break-glass without single sign-on, or without any account named.
        let e = err(&[
            ("MEDPORT_PASSWORD_SIGN_IN", "break-glass"),
            ("MEDPORT_BREAK_GLASS_EMAILS", "root@example.org"),
        ]);
        assert_eq!(e.setting, "MEDPORT_PASSWORD_SIGN_IN");
        let mut glass = SSO.to_vec();
        glass.push(("MEDPORT_PASSWORD_SIGN_IN", "break-glass"));
        assert_eq!(err(&glass).setting, "MEDPORT_BREAK_GLASS_EMAILS");
        glass.push((
            "MEDPORT_BREAK_GLASS_EMAILS",
            "Root@Example.org, not-an-address",
        ));
        assert_eq!(err(&glass).setting, "MEDPORT_BREAK_GLASS_EMAILS");
        glass.pop();
        glass.push(("MEDPORT_BREAK_GLASS_EMAILS", "Root@Example.org"));
        let s = load(&glass);
        assert!(s.password_sign_in.allows("root@example.org"));
        assert!(!s.password_sign_in.allows("nurse@example.org"));
        // OIDC settings without the issuer are not silently ignored.
        assert_eq!(
            err(&[("MEDPORT_OIDC_CLIENT_ID", "medport")]).setting,
            "MEDPORT_OIDC_CLIENT_ID"
        );
    }

    #[test]
    fn a_weak_metrics_token_is_refused_without_being_echoed() {
        for weak in ["short-token", &format!("{} with a space", "x".repeat(32))] {
            let e = err(&[("MEDPORT_METRICS_TOKEN", weak)]).to_string();
            assert!(e.contains("MEDPORT_METRICS_TOKEN"), "{e}");
            assert!(!e.contains(weak), "{e}");
        }
        let strong = "0123456789abcdef".repeat(4);
        let s = load(&[("MEDPORT_METRICS_TOKEN", &strong)]);
        assert_eq!(
            s.metrics_token.map(|t| t.expose_secret().to_string()),
            Some(strong)
        );
    }

    #[test]
    fn https_public_url_is_detected() {
        let s = load(&[("MEDPORT_PUBLIC_URL", "https://medport.example.org")]);
        let url = s.public_url.unwrap();
        assert!(url.is_https());
        assert_eq!(url.origin(), "https://medport.example.org");
    }
}
