//! Request limits (`MEDPORT_RATE_LIMIT_*`): per minute, per client. A signed-in user or an
//! API key counts per account, anonymous traffic per address (see `web::rate_limit`).

use std::collections::HashMap;

use super::{ConfigError, FileSettings, Settings, Val};

/// Requests per minute per client, by route class.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Sign-in and TOTP steps (POST only).
    pub login_per_minute: u32,
    pub login_burst: u32,
    /// Password change and API key creation.
    pub sensitive_per_minute: u32,
    /// tus PATCH and HEAD (one per chunk of a file).
    pub upload_per_minute: u32,
    /// Everything else.
    pub general_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_per_minute: 5,
            login_burst: 5,
            sensitive_per_minute: 10,
            // 100 files a second for a minute: a CD of small files, one request each.
            upload_per_minute: 6000,
            general_per_minute: 300,
        }
    }
}

const MAX_PER_MINUTE: u64 = 1_000_000;

/// (file key, environment variable) for each limit, in `RateLimits` field order.
const KEYS: [(&str, &str); 5] = [
    (
        "rate_limit_login_per_minute",
        "MEDPORT_RATE_LIMIT_LOGIN_PER_MINUTE",
    ),
    ("rate_limit_login_burst", "MEDPORT_RATE_LIMIT_LOGIN_BURST"),
    (
        "rate_limit_sensitive_per_minute",
        "MEDPORT_RATE_LIMIT_SENSITIVE_PER_MINUTE",
    ),
    (
        "rate_limit_upload_per_minute",
        "MEDPORT_RATE_LIMIT_UPLOAD_PER_MINUTE",
    ),
    (
        "rate_limit_general_per_minute",
        "MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE",
    ),
];

#[derive(Debug, Default)]
pub(super) struct RawRateLimits {
    values: [Option<Val>; 5],
}

impl RawRateLimits {
    /// Takes the limit keys out of the file settings; the environment overrides them.
    pub(super) fn merge(file: &mut FileSettings, env: &HashMap<String, String>) -> Self {
        let from_file = [
            file.rate_limit_login_per_minute.take(),
            file.rate_limit_login_burst.take(),
            file.rate_limit_sensitive_per_minute.take(),
            file.rate_limit_upload_per_minute.take(),
            file.rate_limit_general_per_minute.take(),
        ];
        let mut values: [Option<Val>; 5] = Default::default();
        for (slot, ((key, var), file_value)) in values.iter_mut().zip(KEYS.iter().zip(from_file)) {
            *slot = super::pick(env, key, file_value.map(|n| n.to_string()), var);
        }
        Self { values }
    }

    pub(super) fn validate(&self, s: &mut Settings) -> Result<(), ConfigError> {
        let r = &mut s.rate_limits;
        let fields = [
            &mut r.login_per_minute,
            &mut r.login_burst,
            &mut r.sensitive_per_minute,
            &mut r.upload_per_minute,
            &mut r.general_per_minute,
        ];
        for (field, value) in fields.into_iter().zip(&self.values) {
            if let Some(v) = value {
                *field =
                    u32::try_from(super::parse_in_range(v, 1, MAX_PER_MINUTE)?).unwrap_or(u32::MAX);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(None, &env)
    }

    fn all(r: &RateLimits) -> (u32, u32, u32, u32, u32) {
        (
            r.login_per_minute,
            r.login_burst,
            r.sensitive_per_minute,
            r.upload_per_minute,
            r.general_per_minute,
        )
    }

    #[test]
    fn limits_default_to_the_documented_values() {
        let s = load(&[]).unwrap();
        assert_eq!(all(&s.rate_limits), (5, 5, 10, 6000, 300));
    }

    #[test]
    fn each_limit_is_set_from_its_variable() {
        let s = load(&[
            ("MEDPORT_RATE_LIMIT_LOGIN_PER_MINUTE", "20"),
            ("MEDPORT_RATE_LIMIT_LOGIN_BURST", "30"),
            ("MEDPORT_RATE_LIMIT_SENSITIVE_PER_MINUTE", "40"),
            ("MEDPORT_RATE_LIMIT_UPLOAD_PER_MINUTE", "50"),
            ("MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE", "600"),
        ])
        .unwrap();
        assert_eq!(all(&s.rate_limits), (20, 30, 40, 50, 600));
    }

    #[test]
    fn a_limit_must_be_a_positive_whole_number() {
        for bad in ["0", "-1", "lots", "2000000"] {
            let err = load(&[("MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE", bad)]).unwrap_err();
            assert_eq!(err.setting, "MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE");
        }
    }
}
