//! The file name normaliser (`SafeFilename::parse`) and the `Content-Disposition` built
//! from its output.

use std::sync::LazyLock;

use actix_web::http::header::HeaderValue;
use medport::app::buckets::extension_of;
use medport::app::uploads::filename::{MAX_BYTES, SafeFilename, content_disposition};
use proptest::prelude::*;
use unicode_normalization::{UnicodeNormalization, is_nfc};

use crate::support::{config, ensure, mutated_text, replay, text};

/// Every code point whose general category is Cc, Cf, Zl or Zp, from the Unicode Character
/// Database (version 14, plus the format controls version 15 added at U+13439..U+1343F),
/// and the other Default_Ignorable_Code_Point ranges of DerivedCoreProperties.txt.
/// Written out here, not taken from the code under test, so the two can disagree.
const HIDDEN: &[(u32, u32)] = &[
    (0x0, 0x1f),
    (0x7f, 0x9f),
    (0xad, 0xad),
    (0x600, 0x605),
    (0x61c, 0x61c),
    (0x6dd, 0x6dd),
    (0x70f, 0x70f),
    (0x890, 0x891),
    (0x8e2, 0x8e2),
    (0x180e, 0x180e),
    (0x200b, 0x200f),
    (0x2028, 0x202e),
    (0x2060, 0x2064),
    (0x2066, 0x206f),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x1343f),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
    // The rest of Unicode's default-ignorable code points.
    (0x034f, 0x034f),
    (0x115f, 0x1160),
    (0x17b4, 0x17b5),
    (0x180b, 0x180f),
    (0x2065, 0x2065),
    (0x3164, 0x3164),
    (0xfe00, 0xfe0f),
    (0xffa0, 0xffa0),
    (0xfff0, 0xfff8),
    (0xe0000, 0xe0fff),
];

fn hidden(c: char) -> bool {
    let c = u32::from(c);
    HIDDEN.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

/// The name the rules promise for `raw`, before any shortening: `None` when it must be
/// refused.
fn expected_clean(raw: &str) -> Option<String> {
    let visible: String = raw.chars().filter(|c| !hidden(*c)).collect();
    let nfc: String = visible.nfc().collect();
    let last = nfc.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if last == "." || last == ".." {
        return None;
    }
    let name = last.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    (!name.is_empty()).then(|| name.to_string())
}

fn check_output(raw: &str, name: &SafeFilename) -> Result<(), TestCaseError> {
    let s = name.as_str();
    let fail = |what: &str| format!("{raw:?} -> {s:?}: {what}");
    ensure(!s.is_empty() && s.len() <= MAX_BYTES, || fail("length"))?;
    ensure(!s.chars().any(hidden), || {
        fail("control or format character")
    })?;
    ensure(!s.contains(['/', '\\']), || fail("path separator"))?;
    ensure(s != "." && s != "..", || fail("dot name"))?;
    ensure(s.trim() == s, || fail("surrounding whitespace"))?;
    ensure(!s.ends_with('.'), || fail("trailing dot"))?;
    ensure(is_nfc(s), || fail("not NFC"))?;
    let again = SafeFilename::parse(s);
    ensure(again.as_ref().ok() == Some(name), || {
        fail(&format!("not idempotent: {again:?}"))
    })?;
    let _ = (name.extension(), name.extension_allowed(&["pdf", "nii.gz"]));
    check_disposition(name)
}

/// RFC 6266 with an RFC 8187 `filename*`: a quoted ASCII fallback without `"` or `\\`,
/// and the percent-encoded name in `attr-char`s.
static SHAPE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"^attachment; filename="([^"\\]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)$"#,
    )
    .unwrap()
});

fn check_disposition(name: &SafeFilename) -> Result<(), TestCaseError> {
    let value = content_disposition(name);
    let fail = |what: &str| format!("{name:?} -> {value:?}: {what}");
    ensure(value.bytes().all(|b| (0x20..0x7f).contains(&b)), || {
        fail("not visible ASCII")
    })?;
    ensure(HeaderValue::from_str(&value).is_ok(), || {
        fail("not a header value")
    })?;
    let captures = SHAPE
        .captures(&value)
        .ok_or_else(|| TestCaseError::fail(fail("shape")))?;
    ensure(
        captures[1].chars().count() == name.as_str().chars().count(),
        || fail("fallback length"),
    )?;
    let decoded = percent_decode(&captures[2]);
    ensure(decoded.as_deref() == Some(name.as_str().as_bytes()), || {
        fail("filename* does not decode to the name")
    })
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// What must hold for any raw name.
fn check_filename(raw: &str) -> Result<(), TestCaseError> {
    let parsed = SafeFilename::parse(raw);
    let expected = expected_clean(raw);
    match (&expected, &parsed) {
        (None, Ok(name)) => Err(TestCaseError::fail(format!(
            "{raw:?} should be refused, got {name:?}"
        ))),
        (Some(clean), Ok(name)) if clean.len() <= MAX_BYTES => {
            ensure(name.as_str() == clean, || {
                format!("{raw:?}: expected {clean:?}, got {name:?}")
            })?;
            check_output(raw, name)
        }
        (Some(clean), Ok(name)) => {
            // Shortened: the allowlisted type must not change.
            ensure(extension_of(name.as_str()) == extension_of(clean), || {
                format!("{raw:?}: shortening changed the type: {name:?}")
            })?;
            check_output(raw, name)
        }
        (Some(clean), Err(e)) => ensure(clean.len() > MAX_BYTES, || {
            format!("{raw:?} refused ({}) but cleans to {clean:?}", e.message)
        }),
        (None, Err(_)) => Ok(()),
    }
}

fn extension() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "dcm", "DCM", "pdf", "nii.gz", "tar.gz", "NII.GZ", "gz", "txt", "csv", "exe", "pdf.exe",
        "", "x", "jpeg", "a.b.c",
    ])
}

/// Names as clients send them: a path prefix from some OS, a stem, an extension.
fn realistic_name() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(vec![
            "",
            "",
            "C:\\Users\\dr\\Desktop\\",
            "/home/dr/",
            "../../",
            "..\\",
            "./",
            "a/b\\c/",
            "\\\\server\\share\\",
            "file:///",
        ]),
        "[a-zA-Z0-9 _().-]{1,40}",
        extension(),
        "[ .]{0,2}",
    )
        .prop_map(|(prefix, stem, ext, tail)| {
            let dot = if ext.is_empty() { "" } else { "." };
            format!("{prefix}{stem}{dot}{ext}{tail}")
        })
}

/// Names long enough to be shortened, in characters of 1 to 4 bytes, with combining marks,
/// Hangul jamo (which compose), spaces and dots at the cut. (A regex strategy: generating
/// long strings character by character is slow in a debug build.)
fn long_name() -> impl Strategy<Value = (String, &'static str)> {
    (
        "[a-zé\u{301}\u{1f600}한\u{1100}\u{1161} .e]{120,400}",
        proptest::sample::select(vec!["dcm", "nii.gz", "tar.gz", "pdf", "txt"]),
    )
        .prop_map(|(stem, ext)| (format!("{stem}.{ext}"), ext))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn filename_any_text(raw in any::<String>()) {
        check_filename(&raw)?;
    }

    #[test]
    fn filename_mutated_realistic_names(raw in mutated_text(realistic_name())) {
        check_filename(&raw)?;
    }

    #[test]
    fn filename_long_names_keep_their_type((raw, ext) in long_name()) {
        check_filename(&raw)?;
        if let Ok(name) = SafeFilename::parse(&raw) {
            let expected = if ext == "tar.gz" { "gz" } else { ext };
            prop_assert_eq!(extension_of(name.as_str()), Some(expected), "{:?}", name);
        }
    }
}

#[test]
fn filename_corpus() {
    replay("filename", |_, bytes| check_filename(&text(bytes)));
}
