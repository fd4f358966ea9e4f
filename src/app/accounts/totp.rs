//! Time-based one-time passwords (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps, with
//! the step before and after the current one accepted for clock drift.
//!
//! These are the parameters every authenticator app supports without asking; SHA-1 is
//! still sound inside HMAC, and the app would silently ignore anything stronger.
//!
//! A code is valid for about 90 seconds, so on its own it can be replayed. [`verify`]
//! returns the time step that matched; the caller stores it and refuses any later code
//! whose step is not newer (in the same transaction as the check).

use data_encoding::{BASE32_NOPAD, BASE64};
use qrcode::QrCode;
use qrcode::render::svg;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretBox};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// 160 bits: the HMAC-SHA-1 output size, which RFC 4226 recommends as the seed length.
const SECRET_LEN: usize = 20;
const DIGITS: usize = 6;
const STEP_SECS: i64 = 30;
/// Steps accepted on each side of the current one.
const WINDOW: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("the system random number generator failed")]
    Random,
    #[error("the enrolment link does not fit in a QR code")]
    QrCode,
}

/// The shared seed between the server and the user's authenticator. Stored only sealed
/// (see `storage::secrets`); zeroed when dropped and never printed.
pub struct TotpSecret(SecretBox<[u8; SECRET_LEN]>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    pub fn generate() -> Result<Self, TotpError> {
        let rng = SystemRandom::new();
        let mut failed = false;
        // Filled in place on the heap, so no copy of the seed is left on the stack.
        let secret = SecretBox::init_with_mut(|bytes: &mut [u8; SECRET_LEN]| {
            failed = rng.fill(bytes).is_err();
        });
        if failed {
            return Err(TotpError::Random);
        }
        Ok(Self(secret))
    }

    /// The seed as stored (after unsealing). Anything but exactly 20 bytes is refused.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SECRET_LEN {
            return None;
        }
        Some(Self(SecretBox::init_with_mut(
            |seed: &mut [u8; SECRET_LEN]| seed.copy_from_slice(bytes),
        )))
    }

    pub fn expose(&self) -> &[u8; SECRET_LEN] {
        self.0.expose_secret()
    }

    /// RFC 4648 base32, upper case, without padding: the form authenticator apps expect
    /// when the seed is typed in by hand.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(self.expose())
    }
}

/// The RFC 6238 time step containing `unix_time` (rounding down, also before 1970).
pub fn step_at(unix_time: i64) -> i64 {
    unix_time.div_euclid(STEP_SECS)
}

/// The 6-digit code for one time step, zero-padded.
pub fn code_for_step(secret: &TotpSecret, step: i64) -> String {
    code_digits(&hmac_key(secret), step)
        .iter()
        .map(|&digit| char::from(digit))
        .collect()
}

/// Checks `code` against the steps around `unix_time` and returns the step it matched.
///
/// Spaces are allowed ("123 456", as some apps display it); anything else that is not
/// exactly six ASCII digits is refused. All three candidate codes are computed and compared
/// in constant time, so the response time does not reveal which window (if any) matched.
/// Should a code match two steps, the later one is returned, so a replay check on the
/// stored step refuses the code in either window.
pub fn verify(secret: &TotpSecret, code: &str, unix_time: i64) -> Option<i64> {
    let candidate = parse_code(code)?;
    let key = hmac_key(secret);
    let now = step_at(unix_time);
    let mut found = Choice::from(0);
    let mut matched: i64 = 0;
    for offset in -WINDOW..=WINDOW {
        let step = now.saturating_add(offset);
        let is_match = code_digits(&key, step).ct_eq(&candidate);
        matched.conditional_assign(&step, is_match);
        found |= is_match;
    }
    bool::from(found).then_some(matched)
}

/// The Key URI that authenticator apps read from the enrolment QR code
/// (`otpauth://totp/Issuer:account?secret=...`). The label and the `issuer` parameter are
/// percent-encoded, so a `:` `&` `+` or space in either cannot change the URI's structure.
/// The result contains the seed: show it to the user once, never log it.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

/// The URI as a QR code, as an SVG `data:` URI for an `<img src>`: the page needs no
/// inline SVG and the template no `|safe`. The CSP allows `img-src 'self' data:`.
pub fn qr_svg_data_uri(uri: &str) -> Result<String, TotpError> {
    let code = QrCode::new(uri.as_bytes()).map_err(|_| TotpError::QrCode)?;
    let image = code
        .render::<svg::Color>()
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        // The blank margin scanners need to find the code, even on a dark page.
        .quiet_zone(true)
        .min_dimensions(200, 200)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        BASE64.encode(image.as_bytes())
    ))
}

fn hmac_key(secret: &TotpSecret) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.expose())
}

/// RFC 4226 section 5.3: HMAC of the big-endian counter, dynamic truncation to 31 bits,
/// then the last six decimal digits, as ASCII.
fn code_digits(key: &hmac::Key, step: i64) -> [u8; DIGITS] {
    let tag = hmac::sign(key, &step.to_be_bytes());
    let mac = tag.as_ref();
    // SHA-1 output is 20 bytes; the offset is at most 15, so offset + 3 is in range.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    let mut value = binary % 1_000_000;
    let mut digits = [b'0'; DIGITS];
    for digit in digits.iter_mut().rev() {
        // `value % 10` is below 10, so the cast cannot truncate.
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    digits
}

/// Trimmed, with inner spaces removed, the code must be exactly six ASCII digits.
fn parse_code(input: &str) -> Option<[u8; DIGITS]> {
    let mut digits = [0u8; DIGITS];
    let mut len = 0;
    for c in input.trim().chars().filter(|&c| c != ' ') {
        if !c.is_ascii_digit() || len == DIGITS {
            return None;
        }
        // An ASCII digit is one byte.
        digits[len] = c as u8;
        len += 1;
    }
    (len == DIGITS).then_some(digits)
}

/// Percent-encodes everything outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`),
/// byte by byte over the UTF-8 encoding.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = rfc_secret();
        // RFC 6238 Appendix B gives 8 digits; six-digit codes are their last six.
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, eight) in vectors {
            let expected = &eight[2..];
            assert_eq!(code_for_step(&secret, step_at(time)), expected, "t={time}");
            assert_eq!(verify(&secret, expected, time), Some(step_at(time)));
        }
    }

    #[test]
    fn steps_round_down() {
        assert_eq!(step_at(0), 0);
        assert_eq!(step_at(29), 0);
        assert_eq!(step_at(30), 1);
        assert_eq!(step_at(59), 1);
        assert_eq!(step_at(-1), -1);
    }

    #[test]
    fn one_step_of_drift_is_accepted_two_are_not() {
        let secret = rfc_secret();
        let t = 1_111_111_111;
        let step = step_at(t);
        let code = code_for_step(&secret, step);
        assert_eq!(verify(&secret, &code, t), Some(step));
        assert_eq!(verify(&secret, &code, t + 30), Some(step));
        assert_eq!(verify(&secret, &code, t - 30), Some(step));
        assert_eq!(verify(&secret, &code, t + 60), None);
        assert_eq!(verify(&secret, &code, t - 60), None);
        // The matched step is the code's own, so the caller can refuse a replay.
        let next = code_for_step(&secret, step + 1);
        assert_eq!(verify(&secret, &next, t), Some(step + 1));
    }

    #[test]
    fn spaces_are_allowed_but_nothing_else() {
        let secret = rfc_secret();
        let t = 1_234_567_890;
        let code = code_for_step(&secret, step_at(t));
        let spaced = format!(" {} {} ", &code[..3], &code[3..]);
        assert_eq!(verify(&secret, &spaced, t), Some(step_at(t)));
        assert_eq!(verify(&secret, &format!("\t{code}\n"), t), Some(step_at(t)));
        for bad in [
            "",
            "   ",
            &code[..5],
            &format!("{code}0"),
            &format!("0{code}"),
            &format!("{}-{}", &code[..3], &code[3..]),
            &format!("+{}", &code[1..]),
            "12345a",
            "１２３４５６",
            "٠١٢٣٤٥",
        ] {
            assert_eq!(verify(&secret, bad, t), None, "{bad:?}");
        }
    }

    #[test]
    fn wrong_secret_is_refused() {
        let t = 1_234_567_890;
        let code = code_for_step(&rfc_secret(), step_at(t));
        // A fixed other secret: a random one would match by chance once in ~300,000 runs.
        let other = TotpSecret::from_bytes(&[7u8; 20]).unwrap();
        assert_eq!(verify(&other, &code, t), None);
    }

    #[test]
    fn secret_lengths_and_encoding() {
        assert!(TotpSecret::from_bytes(&[0u8; 19]).is_none());
        assert!(TotpSecret::from_bytes(&[0u8; 21]).is_none());
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn debug_hides_the_seed() {
        let secret = rfc_secret();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "TotpSecret(..)");
        assert!(!shown.contains(&secret.to_base32()));
    }

    #[test]
    fn otpauth_uri_escapes_label_and_issuer() {
        let uri = otpauth_uri(&rfc_secret(), "Med Port", "dr.a+b@example.org");
        assert_eq!(
            uri,
            "otpauth://totp/Med%20Port:dr.a%2Bb%40example.org\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Med%20Port\
             &algorithm=SHA1&digits=6&period=30"
        );
        let tricky = otpauth_uri(&rfc_secret(), "a:b&c=d", "x?y#z/ü");
        assert!(
            tricky.starts_with("otpauth://totp/a%3Ab%26c%3Dd:x%3Fy%23z%2F%C3%BC?secret="),
            "{tricky}"
        );
        assert!(tricky.contains("&issuer=a%3Ab%26c%3Dd&"), "{tricky}");
    }

    #[test]
    fn qr_code_is_an_svg_data_uri() {
        let uri = otpauth_uri(&rfc_secret(), "medport", "admin@example.org");
        let data = qr_svg_data_uri(&uri).unwrap();
        let encoded = data.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = String::from_utf8(BASE64.decode(encoded.as_bytes()).unwrap()).unwrap();
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("fill=\"#000\"") && svg.contains("fill=\"#fff\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(width >= 200, "{width}");
    }

    #[test]
    fn oversized_qr_input_is_an_error() {
        assert!(matches!(
            qr_svg_data_uri(&"x".repeat(8000)),
            Err(TotpError::QrCode)
        ));
    }
}
