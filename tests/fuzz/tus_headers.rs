//! The tus request headers: `Upload-Metadata`, `Upload-Offset` / `Upload-Length` (and
//! `Tus-Resumable`, `Upload-Defer-Length`), `Upload-Checksum`.

use std::collections::BTreeMap;

use data_encoding::BASE64;
use medport::app::uploads::tus_headers::{
    ChecksumAlgorithm, MAX_METADATA_BYTES, TEXT_KEYS, TusHeaderError, UploadMetadata,
    format_metadata, parse_tus_resumable, parse_upload_checksum, parse_upload_defer_length,
    parse_upload_length, parse_upload_metadata, parse_upload_offset,
};
use proptest::prelude::*;

use crate::support::{config, ensure, mutated_text, replay, text};

fn ows_trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

// ---------------------------------------------------------------- Upload-Metadata

/// What must hold for any text given as `Upload-Metadata`.
fn check_metadata(value: &str) -> Result<(), TestCaseError> {
    let parsed = parse_upload_metadata(value);
    if value.len() > MAX_METADATA_BYTES {
        return ensure(parsed.is_err(), || {
            format!("{} bytes accepted", value.len())
        });
    }
    if ows_trim(value).is_empty() {
        return ensure(parsed.as_ref().is_ok_and(UploadMetadata::is_empty), || {
            format!("blank header gave {parsed:?}")
        });
    }
    let Ok(metadata) = parsed else {
        return Ok(());
    };
    // Nothing is dropped silently: one entry per comma-separated pair.
    let pairs = ows_trim(value).split(',').count();
    ensure(metadata.len() == pairs, || {
        format!("{pairs} pairs but {} entries", metadata.len())
    })?;
    for (key, v) in metadata.iter() {
        ensure(
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b','),
            || format!("key {key:?} accepted"),
        )?;
        if TEXT_KEYS.contains(&key) {
            ensure(std::str::from_utf8(v).is_ok(), || {
                format!("{key} is not UTF-8")
            })?;
        }
    }
    // What we would send back parses to the same map.
    let formatted = format_metadata(&metadata);
    ensure(formatted.len() <= value.len(), || {
        format!(
            "formatting grew {} -> {} bytes",
            value.len(),
            formatted.len()
        )
    })?;
    let again = parse_upload_metadata(&formatted);
    ensure(again.as_ref() == Ok(&metadata), || {
        format!("re-parse of {formatted:?} gave {again:?}")
    })
}

fn metadata_pairs() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let key = "[!-+\\--~]{1,12}";
    let pair = prop_oneof![
        2 => (key, prop::collection::vec(any::<u8>(), 0..40)),
        3 => (
            proptest::sample::select(TEXT_KEYS.to_vec()).prop_map(str::to_owned),
            any::<String>().prop_map(String::into_bytes),
        ),
        1 => (
            Just("filename".to_string()),
            "[a-zA-Z0-9 ._-]{0,30}\\.(dcm|pdf|nii\\.gz|tar\\.gz|txt)"
                .prop_map(String::into_bytes),
        ),
    ];
    // A later pair with the same key replaces the earlier one: keys stay unique.
    prop::collection::vec(pair, 0..7).prop_map(|pairs| pairs.into_iter().collect())
}

/// A header a client could send: pairs in any order, optional spaces/tabs around pairs,
/// a key alone (or with a trailing space) for an empty value.
fn metadata_header() -> impl Strategy<Value = (BTreeMap<String, Vec<u8>>, String)> {
    (
        metadata_pairs(),
        prop::collection::vec(("[ \t]{0,2}", "[ \t]{0,2}", any::<bool>()), 7),
        any::<bool>(),
    )
        .prop_map(|(map, padding, reverse)| {
            let mut pairs: Vec<(&String, &Vec<u8>)> = map.iter().collect();
            if reverse {
                pairs.reverse();
            }
            let header = pairs
                .iter()
                .zip(&padding)
                .map(
                    |((k, v), (before, after, bare))| match (v.is_empty(), bare) {
                        (true, true) => format!("{before}{k}{after}"),
                        (true, false) => format!("{before}{k} {after}"),
                        _ => format!("{before}{k} {}{after}", BASE64.encode(v)),
                    },
                )
                .collect::<Vec<_>>()
                .join(",");
            (map, header)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn metadata_any_text(value in any::<String>()) {
        check_metadata(&value)?;
    }

    #[test]
    fn metadata_valid_headers_parse_to_their_pairs((map, header) in metadata_header()) {
        let parsed = parse_upload_metadata(&header);
        if header.len() > MAX_METADATA_BYTES {
            prop_assert!(parsed.is_err());
        } else {
            let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{header:?}: {e}")))?;
            let got: BTreeMap<String, Vec<u8>> =
                parsed.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
            prop_assert_eq!(got, map);
        }
        check_metadata(&header)?;
    }

    #[test]
    fn metadata_mutated_headers(header in mutated_text(metadata_header().prop_map(|(_, h)| h))) {
        check_metadata(&header)?;
    }
}

#[test]
fn metadata_corpus() {
    replay("metadata", |_, bytes| check_metadata(&text(bytes)));
}

// ---------------------------------------------------- Upload-Offset / Upload-Length

/// The rule, written out: after trimming spaces and tabs, 1 to 20 ASCII digits (no sign)
/// whose value fits in a u64.
fn expected_number(value: &str) -> Option<u64> {
    let digits = ows_trim(value);
    let plain = (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if plain { digits.parse().ok() } else { None }
}

fn check_number(value: &str) -> Result<(), TestCaseError> {
    let expected = expected_number(value);
    for (name, got) in [
        ("Upload-Offset", parse_upload_offset(value)),
        ("Upload-Length", parse_upload_length(value)),
    ] {
        ensure(got.as_ref().ok() == expected.as_ref(), || {
            format!("{name} {value:?}: expected {expected:?}, got {got:?}")
        })?;
        if let Err(e) = &got {
            ensure(e.status() == 400, || {
                format!("{name} {value:?}: {:?}", e.status())
            })?;
        }
    }
    let version = parse_tus_resumable(value);
    ensure(version.is_ok() == (ows_trim(value) == "1.0.0"), || {
        format!("Tus-Resumable {value:?}: {version:?}")
    })?;
    if let Err(e) = version {
        ensure(
            e == TusHeaderError::UnsupportedVersion && e.status() == 412,
            || format!("Tus-Resumable {value:?}: {e:?}"),
        )?;
    }
    let defer = parse_upload_defer_length(value);
    ensure(defer.is_ok() == (ows_trim(value) == "1"), || {
        format!("Upload-Defer-Length {value:?}: {defer:?}")
    })
}

fn number_like() -> impl Strategy<Value = String> {
    let boundary = prop_oneof![
        any::<u64>(),
        (0u64..1000).prop_map(|k| u64::MAX - k),
        (0u64..1000),
        Just(10_000_000_000_000_000_000u64),
        Just(9_999_999_999_999_999_999u64),
    ];
    prop_oneof![
        // Around the limits, with and without leading zeros and a digit appended.
        (boundary, 0usize..4, prop::option::of(0u8..10)).prop_map(|(n, zeros, extra)| {
            let mut s = format!("{}{n}", "0".repeat(zeros));
            if let Some(d) = extra {
                s.push(char::from(b'0' + d));
            }
            s
        }),
        "[ \t]{0,2}[+-]?[0-9]{0,24}[ \t]{0,2}",
        "[ \t]{0,2}(0x|0X|0b|0o)?[0-9a-fA-F_.eE]{0,22}[ \t]{0,2}",
        Just("1.0.0".to_string()),
        "[ \t]{0,2}1(\\.0){0,3}[ \t]{0,2}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn numbers_any_text(value in any::<String>()) {
        check_number(&value)?;
    }

    #[test]
    fn numbers_near_valid(value in mutated_text(number_like())) {
        check_number(&value)?;
    }

    #[test]
    fn numbers_every_u64_round_trips(n in any::<u64>(), zeros in 0usize..3, pad in "[ \t]{0,2}") {
        let s = format!("{pad}{}{n}{pad}", "0".repeat(zeros));
        let fits = ows_trim(&s).len() <= 20;
        prop_assert_eq!(parse_upload_offset(&s).ok(), fits.then_some(n));
        check_number(&s)?;
    }
}

#[test]
fn offset_corpus() {
    replay("offset", |_, bytes| check_number(&text(bytes)));
}

// -------------------------------------------------------------------- Upload-Checksum

/// The rule, written out: `<sha1|sha256, any case> <padded base64 of exactly the digest
/// length>` after trimming; an unknown algorithm is its own error.
fn expected_checksum(value: &str) -> Result<(ChecksumAlgorithm, Vec<u8>), bool> {
    let (name, encoded) = ows_trim(value).split_once(' ').ok_or(false)?;
    let algorithm = match name.to_ascii_lowercase().as_str() {
        "sha1" => ChecksumAlgorithm::Sha1,
        "sha256" => ChecksumAlgorithm::Sha256,
        _ => return Err(true),
    };
    let digest = BASE64.decode(encoded.as_bytes()).map_err(|_| false)?;
    if digest.len() == algorithm.digest_len() {
        Ok((algorithm, digest))
    } else {
        Err(false)
    }
}

fn check_checksum(value: &str) -> Result<(), TestCaseError> {
    let got = parse_upload_checksum(value);
    match (expected_checksum(value), &got) {
        (Ok((algorithm, digest)), Ok(c)) => {
            ensure(c.algorithm == algorithm && c.digest == digest, || {
                format!("{value:?}: got {c:?}")
            })?;
            let canonical = format!("{} {}", algorithm.name(), BASE64.encode(&c.digest));
            let again = parse_upload_checksum(&canonical);
            ensure(again.as_ref() == Ok(c), || {
                format!("{canonical:?} re-parsed as {again:?}")
            })
        }
        (Err(true), Err(e)) => ensure(
            *e == TusHeaderError::UnsupportedChecksumAlgorithm && e.status() == 400,
            || format!("{value:?}: {e:?}"),
        ),
        (Err(false), Err(e)) => ensure(
            matches!(e, TusHeaderError::Invalid { .. }) && e.status() == 400,
            || format!("{value:?}: {e:?}"),
        ),
        (expected, got) => Err(TestCaseError::fail(format!(
            "{value:?}: expected {expected:?}, got {got:?}"
        ))),
    }
}

fn checksum_like() -> impl Strategy<Value = String> {
    (
        "[ \t]{0,2}",
        prop_oneof![
            Just("sha1"),
            Just("sha256"),
            Just("SHA256"),
            Just("Sha1"),
            Just("md5"),
            Just("sha512"),
            Just(""),
        ],
        prop::collection::vec(any::<u8>(), 0..40),
        prop_oneof![Just(" "), Just("  "), Just("\t"), Just(" \t")],
        "[ \t]{0,2}",
    )
        .prop_map(|(before, name, digest, sep, after)| {
            format!("{before}{name}{sep}{}{after}", BASE64.encode(&digest))
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn checksum_any_text(value in any::<String>()) {
        check_checksum(&value)?;
    }

    #[test]
    fn checksum_near_valid(value in mutated_text(checksum_like())) {
        check_checksum(&value)?;
    }

    #[test]
    fn checksum_valid_digests_parse(sha256 in any::<bool>(), digest in any::<[u8; 32]>()) {
        let (name, len) = if sha256 { ("sha256", 32) } else { ("sha1", 20) };
        let value = format!("{name} {}", BASE64.encode(&digest[..len]));
        prop_assert_eq!(parse_upload_checksum(&value).map(|c| c.digest), Ok(digest[..len].to_vec()));
        check_checksum(&value)?;
    }
}

#[test]
fn checksum_corpus() {
    replay("checksum", |_, bytes| check_checksum(&text(bytes)));
}
