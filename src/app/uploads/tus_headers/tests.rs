use chrono::TimeZone;
use proptest::prelude::*;
use sha2::Digest;

use super::*;

fn invalid(result: Result<impl std::fmt::Debug, TusHeaderError>) -> String {
    match result {
        Err(e @ TusHeaderError::Invalid { .. }) => {
            assert_eq!(e.status(), 400);
            e.to_string()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn tus_resumable_must_be_1_0_0() {
    assert_eq!(parse_tus_resumable("1.0.0"), Ok(()));
    for bad in ["", "1.0", "0.2.2", "1.0.0,0.2.2", "1.0.0.0", "v1.0.0"] {
        let err = parse_tus_resumable(bad).unwrap_err();
        assert_eq!(err, TusHeaderError::UnsupportedVersion, "{bad:?}");
        assert_eq!(err.status(), 412);
    }
}

#[test]
fn offsets_and_lengths_are_plain_decimal_u64() {
    assert_eq!(parse_upload_offset("0"), Ok(0));
    assert_eq!(parse_upload_offset("5242880"), Ok(5_242_880));
    assert_eq!(parse_upload_offset(" 42\t"), Ok(42));
    assert_eq!(parse_upload_offset("007"), Ok(7));
    assert_eq!(parse_upload_length("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(parse_upload_length("00000000000000000001"), Ok(1));
    for bad in [
        "",
        " ",
        "-1",
        "+1",
        "1 000",
        "1_000",
        "0x10",
        "1e3",
        "1.0",
        "٣",
        "１",
        "18446744073709551616",
        "99999999999999999999",
        "000000000000000000001",
    ] {
        let message = invalid(parse_upload_offset(bad));
        assert!(message.starts_with("Upload-Offset: "), "{message}");
        assert!(parse_upload_length(bad).is_err(), "{bad:?}");
    }
    assert!(invalid(parse_upload_length("18446744073709551616")).contains("too large"));
}

#[test]
fn defer_length_is_only_1() {
    assert_eq!(parse_upload_defer_length("1"), Ok(()));
    for bad in ["0", "true", "", "01", "1,1"] {
        invalid(parse_upload_defer_length(bad));
    }
}

#[test]
fn metadata_is_decoded() {
    // The example from the tus 1.0.0 specification, plus a key without value.
    let metadata = parse_upload_metadata(
        "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,bucket MDE5Nw==",
    )
    .unwrap();
    assert_eq!(metadata.len(), 3);
    assert_eq!(
        metadata.get_str("filename"),
        Some("world_domination_plan.pdf")
    );
    assert_eq!(metadata.get("is_confidential"), Some(&b""[..]));
    assert_eq!(metadata.get_str("bucket"), Some("0197"));
    assert_eq!(metadata.get("missing"), None);
}

#[test]
fn metadata_allows_spaces_around_pairs_and_non_utf8_in_other_keys() {
    let metadata = parse_upload_metadata(" filename YS50eHQ= , blob /w== ").unwrap();
    assert_eq!(metadata.get_str("filename"), Some("a.txt"));
    assert_eq!(metadata.get("blob"), Some(&[0xffu8][..]));
    assert_eq!(metadata.get_str("blob"), None);
    assert!(parse_upload_metadata("").unwrap().is_empty());
}

#[test]
fn metadata_errors_are_precise() {
    let cases = [
        ("filename YQ==,filename Yg==", "duplicate key filename"),
        ("filename YQ", "not valid base64"),
        ("filename YQ=", "not valid base64"),
        ("filename Y!==", "not valid base64"),
        ("filename YQ==  ", ""),
        ("filename  YQ==", "more than one space"),
        ("filename YQ== x", "more than one space"),
        ("filename YQ==,,bucket MQ==", "empty key"),
        ("filename YQ==,", "empty key"),
        ("fïlename YQ==", "ASCII"),
        ("file\u{1}name YQ==", "ASCII"),
        ("filename /w==", "UTF-8"),
        ("filetype 4pyT/w==", "UTF-8"),
    ];
    for (header, expected) in cases {
        let result = parse_upload_metadata(header);
        if header == "filename YQ==  " {
            // Trailing whitespace of the field value is not part of it.
            assert!(result.is_ok(), "{header:?}");
            continue;
        }
        let message = invalid(result);
        assert!(message.starts_with("Upload-Metadata: "), "{message}");
        assert!(message.contains(expected), "{header:?}: {message}");
    }
}

#[test]
fn metadata_longer_than_8_kib_is_refused() {
    let long = format!("filename {}", BASE64.encode(&[b'a'; 6150]));
    assert!(long.len() > MAX_METADATA_BYTES);
    assert!(invalid(parse_upload_metadata(&long)).contains("longer than 8192"));
    let fits = format!("filename {}", BASE64.encode(&[b'a'; 6000]));
    assert!(parse_upload_metadata(&fits).is_ok());
}

#[test]
fn the_longest_relative_path_fits_beside_a_long_name() {
    let longest = crate::domain::RelativePath::MAX_BYTES;
    let header = format!(
        "filename {},filetype {},relativePath {},batch {},bucket {}",
        BASE64.encode(&[b'a'; 300]),
        BASE64.encode(&[b'a'; 127]),
        BASE64.encode(&vec![b'a'; longest]),
        BASE64.encode(&[b'0'; 36]),
        BASE64.encode(&[b'0'; 36]),
    );
    assert!(parse_upload_metadata(&header).is_ok());
}

#[test]
fn folder_and_batch_values_must_be_text() {
    for key in ["relativePath", "batch"] {
        let header = format!("{key} {}", BASE64.encode(&[b'C', b'D', b'/', 0xff, 0xfe]));
        let message = invalid(parse_upload_metadata(&header));
        assert!(message.contains("must be UTF-8 text"), "{key}: {message}");
    }
}

#[test]
fn metadata_formats_back() {
    let mut metadata = UploadMetadata::new();
    metadata.insert("filename", "Ärztebrief.pdf").unwrap();
    metadata.insert("flag", "").unwrap();
    metadata.insert("bucket", "b1").unwrap();
    assert_eq!(
        format_metadata(&metadata),
        "bucket YjE=,filename w4RyenRlYnJpZWYucGRm,flag"
    );
    assert!(metadata.insert("bad key", "x").is_err());
    assert!(metadata.insert("filename", vec![0xff]).is_err());
}

#[test]
fn checksums_are_parsed() {
    let sha256 = sha2::Sha256::digest(b"abc");
    let value = format!("sha256 {}", BASE64.encode(&sha256));
    let parsed = parse_upload_checksum(&value).unwrap();
    assert_eq!(parsed.algorithm, ChecksumAlgorithm::Sha256);
    assert_eq!(parsed.digest, sha256.to_vec());

    let parsed = parse_upload_checksum("SHA1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=").unwrap();
    assert_eq!(parsed.algorithm, ChecksumAlgorithm::Sha1);
    assert_eq!(
        hex::encode(&parsed.digest),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
}

#[test]
fn checksum_errors_are_precise() {
    for unknown in [
        "md5 kAFQmDzST7DWlj99KOF/cg==",
        "crc32 AAAAAA==",
        "SHA512 AAAA",
    ] {
        let err = parse_upload_checksum(unknown).unwrap_err();
        assert_eq!(err, TusHeaderError::UnsupportedChecksumAlgorithm);
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("sha1,sha256"));
    }
    assert!(invalid(parse_upload_checksum("sha1 AAAA")).contains("20 bytes, not 3"));
    let sha256_len_as_sha1 = format!("sha1 {}", BASE64.encode(&[0; 32]));
    assert!(invalid(parse_upload_checksum(&sha256_len_as_sha1)).contains("not 32"));
    assert!(invalid(parse_upload_checksum("sha256 !!!")).contains("base64"));
    assert!(invalid(parse_upload_checksum("sha256")).contains("separated by a space"));
    assert!(invalid(parse_upload_checksum("")).contains("separated"));
}

#[test]
fn expires_is_an_imf_fixdate() {
    let at = Utc.with_ymd_and_hms(2025, 6, 5, 7, 8, 9).unwrap();
    assert_eq!(format_expires(at), "Thu, 05 Jun 2025 07:08:09 GMT");
}

fn metadata_map() -> impl Strategy<Value = UploadMetadata> {
    let key = "[!-+\\--~]{1,12}";
    let pair = prop_oneof![
        (key, prop::collection::vec(any::<u8>(), 0..40)),
        (
            proptest::sample::select(TEXT_KEYS.to_vec()).prop_map(str::to_owned),
            any::<String>().prop_map(String::into_bytes),
        ),
    ];
    prop::collection::vec(pair, 0..8).prop_map(|pairs| {
        let mut metadata = UploadMetadata::new();
        for (key, value) in pairs {
            metadata.insert(key, value).unwrap();
        }
        metadata
    })
}

proptest! {
    #[test]
    fn parsers_never_panic(value in any::<String>()) {
        let _ = parse_tus_resumable(&value);
        let _ = parse_upload_offset(&value);
        let _ = parse_upload_length(&value);
        let _ = parse_upload_defer_length(&value);
        let _ = parse_upload_metadata(&value);
        let _ = parse_upload_checksum(&value);
    }

    #[test]
    fn parsers_never_panic_on_header_like_input(
        value in "[a-zA-Z0-9+/=, \t:-]{0,200}"
    ) {
        let _ = parse_upload_offset(&value);
        let _ = parse_upload_metadata(&value);
        let _ = parse_upload_checksum(&value);
    }

    #[test]
    fn numbers_round_trip(n in any::<u64>()) {
        prop_assert_eq!(parse_upload_offset(&n.to_string()), Ok(n));
        prop_assert_eq!(parse_upload_length(&n.to_string()), Ok(n));
    }

    #[test]
    fn metadata_round_trips(metadata in metadata_map()) {
        let header = format_metadata(&metadata);
        prop_assume!(header.len() <= MAX_METADATA_BYTES);
        prop_assert_eq!(parse_upload_metadata(&header), Ok(metadata));
    }

    #[test]
    fn checksums_round_trip(sha256 in any::<bool>(), seed in any::<[u8; 32]>()) {
        let (name, len) = if sha256 { ("sha256", 32) } else { ("SHA1", 20) };
        let digest = seed[..len].to_vec();
        let parsed = parse_upload_checksum(&format!("{name} {}", BASE64.encode(&digest)));
        prop_assert_eq!(parsed.map(|c| c.digest), Ok(digest));
    }
}
