//! Upload settings: size limits, how long an unfinished upload is kept, the cleanup worker's
//! pace, and virus scanning (`MEDPORT_CLAMD`).

use std::collections::HashMap;
use std::time::Duration;

use super::{ConfigError, FileSettings, Settings, Val};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// What happens to an infected file's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineAction {
    /// Moved under the bucket's `quarantine/` prefix, kept for investigation.
    Move,
    /// Deleted from the bucket; the upload row and audit trail remain.
    Delete,
}

impl QuarantineAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Move => "move",
            Self::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// The largest file accepted (default 50 GiB).
    pub max_size: u64,
    /// An unfinished upload expires this long after its creation (tus `Upload-Expires`).
    pub expiry: Duration,
    /// How often the cleanup worker looks for expired uploads.
    pub cleanup_interval: Duration,
    /// clamd's `host:port`; `None` turns scanning off.
    pub clamd: Option<String>,
    /// Files larger than this are not sent to clamd; they are quarantined as "not scanned".
    pub scan_max_size: u64,
    pub quarantine: QuarantineAction,
    /// Memory for parts on their way to storage, shared by every upload of this instance
    /// (default 64 MiB). One part per upload is always allowed, so a full budget slows
    /// uploads down and never stops them.
    pub part_buffer: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            max_size: 50 * GIB,
            expiry: Duration::from_secs(7 * 24 * 3600),
            cleanup_interval: Duration::from_secs(5 * 60),
            clamd: None,
            scan_max_size: 4 * GIB,
            quarantine: QuarantineAction::Move,
            part_buffer: 64 * MIB,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct RawUploads {
    max_size: Option<Val>,
    expiry_hours: Option<Val>,
    cleanup_interval_seconds: Option<Val>,
    clamd: Option<Val>,
    scan_max_size: Option<Val>,
    quarantine: Option<Val>,
    buffer_mib: Option<Val>,
}

impl RawUploads {
    /// Takes the upload keys out of the file settings; the environment overrides them.
    pub(super) fn merge(file: &mut FileSettings, env: &HashMap<String, String>) -> Self {
        let pick = |key: &str, file_value: Option<String>, var: &str| {
            super::pick(env, key, file_value, var)
        };
        let num = |v: Option<u64>| v.map(|n| n.to_string());
        Self {
            max_size: pick(
                "max_upload_size",
                num(file.max_upload_size.take()),
                "MEDPORT_MAX_UPLOAD_SIZE",
            ),
            expiry_hours: pick(
                "upload_expiry_hours",
                num(file.upload_expiry_hours.take()),
                "MEDPORT_UPLOAD_EXPIRY_HOURS",
            ),
            cleanup_interval_seconds: pick(
                "cleanup_interval_seconds",
                num(file.cleanup_interval_seconds.take()),
                "MEDPORT_CLEANUP_INTERVAL_SECONDS",
            ),
            clamd: pick("clamd", file.clamd.take(), "MEDPORT_CLAMD"),
            scan_max_size: pick(
                "scan_max_size",
                num(file.scan_max_size.take()),
                "MEDPORT_SCAN_MAX_SIZE",
            ),
            quarantine: pick("quarantine", file.quarantine.take(), "MEDPORT_QUARANTINE"),
            buffer_mib: pick(
                "upload_buffer_mib",
                num(file.upload_buffer_mib.take()),
                "MEDPORT_UPLOAD_BUFFER_MIB",
            ),
        }
    }

    pub(super) fn validate(&self, s: &mut Settings) -> Result<(), ConfigError> {
        let u = &mut s.uploads;
        if let Some(v) = &self.max_size {
            // 10,000 parts of at most 5 GiB: S3's own ceiling is far above this one.
            u.max_size = super::parse_in_range(v, 1, 5 * 1024 * GIB)?;
        }
        if let Some(v) = &self.expiry_hours {
            u.expiry = Duration::from_secs(super::parse_in_range(v, 1, 90 * 24)? * 3600);
        }
        if let Some(v) = &self.cleanup_interval_seconds {
            u.cleanup_interval = Duration::from_secs(super::parse_in_range(v, 1, 24 * 3600)?);
        }
        if let Some(v) = &self.clamd {
            let addr = v.value.trim();
            u.clamd = if addr.is_empty() {
                None
            } else {
                Some(parse_host_port(v, addr)?)
            };
        }
        if let Some(v) = &self.scan_max_size {
            u.scan_max_size = super::parse_in_range(v, 1, 4 * GIB)?;
        }
        if let Some(v) = &self.buffer_mib {
            u.part_buffer = super::parse_in_range(v, 8, 64 * 1024)? * MIB;
        }
        if let Some(v) = &self.quarantine {
            u.quarantine = match v.value.trim().to_ascii_lowercase().as_str() {
                "move" => QuarantineAction::Move,
                "delete" => QuarantineAction::Delete,
                _ => return Err(ConfigError::new(&v.origin, "expected `move` or `delete`")),
            };
        }
        Ok(())
    }
}

/// `host:port` with a port from 1 to 65535; the host is resolved when connecting.
fn parse_host_port(v: &Val, addr: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::new(&v.origin, "expected host:port, like 127.0.0.1:3310");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if port_ok && host_ok {
        Ok(addr.to_string())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> Val {
        Val {
            value: s.into(),
            origin: "MEDPORT_CLAMD".into(),
        }
    }

    #[test]
    fn clamd_addresses_are_host_and_port() {
        for good in ["127.0.0.1:3310", "clamav:3310", "[::1]:3310"] {
            assert_eq!(parse_host_port(&val(good), good).unwrap(), good);
        }
        for bad in [
            "127.0.0.1",
            ":3310",
            "host:0",
            "host:99999",
            "a b:1",
            "h;rm:1",
        ] {
            assert!(parse_host_port(&val(bad), bad).is_err(), "{bad}");
        }
    }
}
