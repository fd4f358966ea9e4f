//! E-mail through an SMTP server (`MEDPORT_SMTP_URL`, `MEDPORT_SMTP_FROM`) and the timing of
//! the notification workers.
//!
//! The URL names the server and how to reach it: `smtps://host[:465]` (TLS from the first
//! byte), `smtp://host[:587]?tls=required` (STARTTLS, refused if the server does not offer
//! it), `smtp://host[:25]` or `?tls=opportunistic` (STARTTLS when offered). A user name and
//! password may be part of it, but then only in the environment (never in `medport.toml`,
//! which is often world-readable and kept in version control), and only on a connection
//! that is encrypted or stays on this machine.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, FileSettings, Settings, Val};
use crate::domain::email::Email;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://...?tls=required`: STARTTLS, or no mail at all.
    Required,
    /// `smtp://` (or `?tls=opportunistic`): STARTTLS when the server offers it.
    Opportunistic,
}

impl SmtpTls {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Implicit => "TLS",
            Self::Required => "STARTTLS required",
            Self::Opportunistic => "STARTTLS when offered",
        }
    }
}

/// Who the messages come from: an address and an optional display name.
#[derive(Debug, Clone)]
pub struct Sender {
    pub address: Email,
    pub name: Option<String>,
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} <{}>", self.address.as_str()),
            None => f.write_str(self.address.as_str()),
        }
    }
}

/// The SMTP server and the sender.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub server: SmtpServer,
    pub from: Sender,
}

impl SmtpSettings {
    /// For `medport check` and the admin page: everything but the password.
    pub fn describe(&self) -> String {
        format!("{}, from {}", self.server.describe(), self.from)
    }
}

/// Where messages are handed over, as `MEDPORT_SMTP_URL` says.
#[derive(Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

impl SmtpServer {
    fn describe(&self) -> String {
        let scheme = if self.tls == SmtpTls::Implicit {
            "smtps"
        } else {
            "smtp"
        };
        let login = match (&self.username, &self.password) {
            (Some(user), Some(_)) => format!(", signs in as {user} (password set)"),
            (Some(user), None) => format!(", signs in as {user}"),
            _ => String::new(),
        };
        format!(
            "{scheme}://{}:{} ({}){login}",
            self.host,
            self.port,
            self.tls.describe(),
        )
    }
}

// Hand-written so the password never reaches a log line.
impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// When the workers look for due notices and how they retry. Not configurable: tests
/// shorten them; an installation has no reason to.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// How often each instance looks for due e-mail and webhook deliveries.
    pub poll_interval: Duration,
    /// The wait after the first failed attempt; doubled after each further one.
    pub first_retry: Duration,
    /// The longest wait between two attempts.
    pub max_retry: Duration,
    /// Attempts stop once the waits add up to this: the notice is then marked failed.
    pub give_up_after: Duration,
    /// One webhook POST, connection included, ends within this.
    pub webhook_timeout: Duration,
    /// One SMTP exchange step ends within this.
    pub smtp_timeout: Duration,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            first_retry: Duration::from_secs(30),
            max_retry: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            webhook_timeout: Duration::from_secs(10),
            smtp_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct RawSmtp {
    url: Option<Val>,
    from: Option<Val>,
}

impl RawSmtp {
    pub(super) fn merge(file: &mut FileSettings, env: &HashMap<String, String>) -> Self {
        Self {
            url: super::pick(env, "smtp_url", file.smtp_url.take(), "MEDPORT_SMTP_URL"),
            from: super::pick(env, "smtp_from", file.smtp_from.take(), "MEDPORT_SMTP_FROM"),
        }
    }

    pub(super) fn validate(&self, s: &mut Settings) -> Result<(), ConfigError> {
        let url = self.url.as_ref().filter(|v| !v.value.trim().is_empty());
        let from = self.from.as_ref().filter(|v| !v.value.trim().is_empty());
        match (url, from) {
            (None, None) => Ok(()),
            (None, Some(v)) => Err(ConfigError::new(
                &v.origin,
                "is set but MEDPORT_SMTP_URL is not: set both to send e-mail",
            )),
            (Some(v), None) => Err(ConfigError::new(
                &v.origin,
                "needs MEDPORT_SMTP_FROM (the sender address) as well",
            )),
            (Some(url), Some(from)) => {
                s.smtp = Some(SmtpSettings {
                    server: parse_url(url)?,
                    from: parse_from(from)?,
                });
                Ok(())
            }
        }
    }
}

/// The URL may hold a password: errors say what is wrong, never the value.
fn parse_url(v: &Val) -> Result<SmtpServer, ConfigError> {
    let bad = |reason: &str| ConfigError::new(&v.origin, reason);
    let url = url::Url::parse(v.value.trim()).map_err(|_| {
        bad("expected a URL like smtps://mail.example.org or smtp://mail.example.org:587?tls=required")
    })?;
    let mut tls = None;
    for (key, value) in url.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("tls", "required") => tls = Some(SmtpTls::Required),
            ("tls", "opportunistic") => tls = Some(SmtpTls::Opportunistic),
            _ => {
                return Err(bad(
                    "the only option is tls=required or tls=opportunistic (for smtp://)",
                ));
            }
        }
    }
    let tls = match (url.scheme(), tls) {
        ("smtps", None) => SmtpTls::Implicit,
        ("smtps", Some(_)) => return Err(bad("smtps:// is always TLS; drop the tls option")),
        ("smtp", Some(tls)) => tls,
        ("smtp", None) => SmtpTls::Opportunistic,
        _ => return Err(bad("the scheme must be smtp or smtps")),
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("the URL has no host")),
    };
    if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
        return Err(bad(
            "the URL must be just the scheme, credentials, host and port",
        ));
    }
    // lettre's own defaults: submission with TLS, 25 for a relay that may not offer it.
    let port = url.port().unwrap_or(match (tls, url.query().is_some()) {
        (SmtpTls::Implicit, _) => 465,
        (_, true) => 587,
        (_, false) => 25,
    });
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| bad("the user name or password is not valid UTF-8"))
    };
    let username = (!url.username().is_empty())
        .then(|| decode(url.username()))
        .transpose()?;
    let password = url.password().map(decode).transpose()?;
    if password.is_some() {
        if !v.origin.starts_with("MEDPORT_") {
            return Err(bad(
                "must not hold a password in medport.toml: set the URL with its password in MEDPORT_SMTP_URL",
            ));
        }
        let local = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if tls == SmtpTls::Opportunistic && !local {
            return Err(bad(
                "a password must only travel encrypted: use smtps:// or ?tls=required",
            ));
        }
    }
    Ok(SmtpServer {
        host,
        port,
        tls,
        username,
        password: password.map(SecretString::from),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `name@example.org` or `Display Name <name@example.org>`.
fn parse_from(v: &Val) -> Result<Sender, ConfigError> {
    let raw = v.value.trim();
    let (name, address) = match raw.strip_suffix('>').and_then(|r| r.rsplit_once('<')) {
        Some((name, address)) => (Some(name.trim()), address),
        None => (None, raw),
    };
    let address = Email::parse(address).map_err(|e| {
        ConfigError::new(
            &v.origin,
            format!(
                "the sender address {}",
                e.message.trim_start_matches("email ")
            ),
        )
    })?;
    let name = name.filter(|n| !n.is_empty());
    if let Some(name) = name
        && (name.len() > 100
            || name
                .chars()
                .any(|c| c.is_control() || matches!(c, '<' | '>' | '"' | '\\')))
    {
        return Err(ConfigError::new(
            &v.origin,
            "the display name must be at most 100 characters, without quotes, angle brackets or control characters",
        ));
    }
    Ok(Sender {
        address,
        name: name.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(value: &str, origin: &str) -> Val {
        Val {
            value: value.into(),
            origin: origin.into(),
        }
    }

    fn url(value: &str) -> Result<SmtpServer, ConfigError> {
        parse_url(&val(value, "MEDPORT_SMTP_URL"))
    }

    #[test]
    fn the_url_says_how_the_connection_is_protected() {
        let s = url("smtps://mail.example.org").unwrap();
        assert_eq!((s.tls, s.port), (SmtpTls::Implicit, 465));
        let s = url("smtp://mail.example.org?tls=required").unwrap();
        assert_eq!((s.tls, s.port), (SmtpTls::Required, 587));
        let s = url("smtp://mail.example.org:2525?tls=opportunistic").unwrap();
        assert_eq!((s.tls, s.port), (SmtpTls::Opportunistic, 2525));
        let s = url("smtp://127.0.0.1").unwrap();
        assert_eq!((s.tls, s.port), (SmtpTls::Opportunistic, 25));
        for bad in [
            "http://mail.example.org",
            "smtp://mail.example.org?tls=none",
            "smtps://mail.example.org?tls=required",
            "smtp://mail.example.org/path",
            "smtp://",
            "not a url",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_password_only_comes_from_the_environment_and_only_travels_encrypted() {
        let s = url("smtps://medport%40example.org:p%40ss@mail.example.org").unwrap();
        assert_eq!(s.username.as_deref(), Some("medport@example.org"));
        assert_eq!(
            s.password
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            Some("p@ss")
        );
        let shown = format!("{s:?} {}", s.describe());
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );

        let in_file = parse_url(&val(
            "smtps://user:s3cret@mail.example.org",
            "smtp_url (medport.toml)",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            in_file.contains("MEDPORT_SMTP_URL") && !in_file.contains("s3cret"),
            "{in_file}"
        );
        // A user name alone is not a secret.
        assert!(
            parse_url(&val(
                "smtps://user@mail.example.org",
                "smtp_url (medport.toml)"
            ))
            .is_ok()
        );

        let plain = url("smtp://user:s3cret@mail.example.org")
            .unwrap_err()
            .to_string();
        assert!(
            plain.contains("encrypted") && !plain.contains("s3cret"),
            "{plain}"
        );
        assert!(url("smtp://user:s3cret@mail.example.org?tls=required").is_ok());
        assert!(url("smtp://user:s3cret@127.0.0.1:2525").is_ok());
    }

    #[test]
    fn the_sender_is_an_address_with_an_optional_name() {
        let from = |v: &str| parse_from(&val(v, "MEDPORT_SMTP_FROM"));
        let s = from("Medport <NoReply@Example.org>").unwrap();
        assert_eq!(s.address.as_str(), "noreply@example.org");
        assert_eq!(s.to_string(), "Medport <noreply@example.org>");
        assert_eq!(
            from("noreply@example.org").unwrap().to_string(),
            "noreply@example.org"
        );
        for bad in [
            "",
            "not an address",
            "\"Quoted\" <a@example.org>",
            "A\nB <a@example.org>",
        ] {
            assert!(from(bad).is_err(), "{bad:?}");
        }
    }
}
