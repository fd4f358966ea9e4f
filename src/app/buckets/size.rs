//! Byte sizes: the form takes plain bytes; pages show them for people.

use crate::domain::FieldError;

/// The optional size limit from the form: empty means no limit; otherwise a positive whole
/// number of bytes that fits the database column (checked, never wrapping).
pub fn parse_size_limit(raw: &str) -> Result<Option<u64>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let err = |m: &str| Err(FieldError::new("size_limit", m));
    if !raw.bytes().all(|b| b.is_ascii_digit()) {
        return err("must be a whole number of bytes, such as 10737418240 for 10 GiB");
    }
    let Ok(bytes) = raw.parse::<u64>() else {
        return err("is too large");
    };
    if bytes == 0 {
        return err("must be more than 0 bytes (leave it empty for no limit)");
    }
    if i64::try_from(bytes).is_err() {
        return err("is too large");
    }
    Ok(Some(bytes))
}

/// "512 bytes", "1.5 KiB", "10 GiB" (binary units, at most one decimal).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return if bytes == 1 {
            "1 byte".to_string()
        } else {
            format!("{bytes} bytes")
        };
    }
    let mut unit = 0;
    let mut scale: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes / scale >= 1024 {
        scale = scale.saturating_mul(1024);
        unit += 1;
    }
    // Tenths of the unit, rounded down, in integers: no float rounding surprises.
    let whole = bytes / scale;
    let tenths = (bytes % scale).saturating_mul(10) / scale;
    if tenths == 0 {
        format!("{whole} {}", UNITS[unit])
    } else {
        format!("{whole}.{tenths} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits_are_positive_whole_bytes_that_fit() {
        assert_eq!(parse_size_limit("").unwrap(), None);
        assert_eq!(parse_size_limit(" 1024 ").unwrap(), Some(1024));
        assert_eq!(
            parse_size_limit("9223372036854775807").unwrap(),
            Some(i64::MAX as u64)
        );
        for bad in [
            "0",
            "-1",
            "1.5",
            "10GB",
            "1e9",
            "9223372036854775808",
            "99999999999999999999999",
        ] {
            assert!(parse_size_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(0), "0 bytes");
        assert_eq!(human(1), "1 byte");
        assert_eq!(human(1023), "1023 bytes");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(10 * 1024 * 1024 * 1024), "10 GiB");
        assert_eq!(human(u64::MAX), "15.9 EiB");
    }
}
