use proptest::prelude::*;

use super::*;

const ALL: [FileKind; 11] = [
    FileKind::Dicom,
    FileKind::Pdf,
    FileKind::Png,
    FileKind::Jpeg,
    FileKind::Zip,
    FileKind::Gzip,
    FileKind::Tar,
    FileKind::Nifti,
    FileKind::NiftiGz,
    FileKind::Text,
    FileKind::Csv,
];

fn dicom(preamble: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; 128];
    bytes[..preamble.len()].copy_from_slice(preamble);
    bytes.extend_from_slice(b"DICM\x02\x00\x00\x00UL\x04\x00");
    bytes.resize(600, 0);
    bytes
}

fn at(offset: usize, magic: &[u8], len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len.max(offset + magic.len())];
    bytes[offset..offset + magic.len()].copy_from_slice(magic);
    bytes
}

fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(64, 0);
    bytes
}

fn sample(kind: FileKind) -> Vec<u8> {
    match kind {
        FileKind::Dicom => dicom(&[]),
        FileKind::Pdf => b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n".to_vec(),
        FileKind::Png => png(),
        FileKind::Jpeg => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec(),
        FileKind::Zip => b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec(),
        FileKind::Gzip | FileKind::NiftiGz => b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03".to_vec(),
        FileKind::Tar => at(257, b"ustar\x0000", 1024),
        FileKind::Nifti => {
            let mut bytes = at(344, b"n+1\0", 352);
            bytes[..4].copy_from_slice(&348u32.to_le_bytes());
            bytes
        }
        FileKind::Text => "Befund: unauffällig.\nÄrztin: Dr. Ölmez\n"
            .as_bytes()
            .to_vec(),
        FileKind::Csv => "id;name;größe\n1;Ärger;3\n".as_bytes().to_vec(),
    }
}

#[test]
fn extensions_map_to_kinds() {
    assert_eq!(FileKind::from_extension("dcm"), Some(FileKind::Dicom));
    assert_eq!(FileKind::from_extension("dicom"), Some(FileKind::Dicom));
    assert_eq!(FileKind::from_extension("jpeg"), Some(FileKind::Jpeg));
    assert_eq!(FileKind::from_extension("tar.gz"), Some(FileKind::Gzip));
    assert_eq!(FileKind::from_extension("tgz"), Some(FileKind::Gzip));
    assert_eq!(FileKind::from_extension("nii.gz"), Some(FileKind::NiftiGz));
    assert_eq!(FileKind::from_extension("exe"), None);
    for ext in crate::app::buckets::ALLOWED_EXTENSIONS {
        assert!(FileKind::from_extension(ext).is_some(), "{ext}");
    }
}

#[test]
fn every_kind_accepts_its_own_format() {
    for kind in ALL {
        let bytes = sample(kind);
        assert_eq!(check(kind, &bytes, true), Ok(()), "{kind:?}");
        if bytes.len() >= bytes_needed(kind) {
            assert_eq!(check(kind, &bytes, false), Ok(()), "{kind:?} incomplete");
        }
    }
    assert_eq!(check(FileKind::Zip, b"PK\x05\x06\0\0\0\0", true), Ok(()));
    assert_eq!(
        check(FileKind::Nifti, &at(344, b"ni1\0", 348), true),
        Ok(())
    );
    assert_eq!(
        check(FileKind::Tar, &at(257, b"ustar  \0", 512), false),
        Ok(())
    );
}

#[test]
fn every_kind_rejects_the_other_formats() {
    for kind in ALL {
        for other in ALL {
            let bytes = sample(other);
            let same_signature = kind == other
                || matches!(
                    (kind, other),
                    (FileKind::Gzip, FileKind::NiftiGz)
                        | (FileKind::NiftiGz, FileKind::Gzip)
                        | (FileKind::Text, FileKind::Csv)
                        | (FileKind::Csv, FileKind::Text)
                );
            if same_signature {
                continue;
            }
            let err = check(kind, &bytes, true).unwrap_err();
            assert!(err.is_rejection(), "{kind:?} given {other:?}: {err:?}");
        }
    }
}

#[test]
fn a_pdf_that_is_a_png_is_rejected_naming_both() {
    let err = check(FileKind::Pdf, &png(), true).unwrap_err();
    assert_eq!(
        err,
        SniffError::Mismatch {
            expected: FileKind::Pdf,
            found: "a PNG image"
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("PDF") && message.contains("PNG"),
        "{message}"
    );
}

#[test]
fn dicom_with_an_executable_preamble_is_rejected() {
    for (magic, what) in [
        (&b"MZ\x90\x00"[..], "Windows"),
        (b"\x7fELF\x02\x01", "ELF"),
        (b"#!/bin/sh\n", "script"),
        (b"\xcf\xfa\xed\xfe", "Mach-O"),
        (b"\xca\xfe\xba\xbe", "Mach-O"),
    ] {
        let err = check(FileKind::Dicom, &dicom(magic), true).unwrap_err();
        assert!(
            matches!(err, SniffError::ExecutablePreamble { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains(what), "{err}");
        // Seen as soon as the magic is there, before the whole preamble arrives.
        assert!(
            check(FileKind::Dicom, magic, false)
                .unwrap_err()
                .is_rejection()
        );
    }
}

#[test]
fn dcm_without_dicm_is_rejected() {
    let mut bytes = dicom(&[]);
    bytes[128..132].copy_from_slice(b"DICX");
    let err = check(FileKind::Dicom, &bytes, true).unwrap_err();
    assert_eq!(
        err,
        SniffError::NotRecognised {
            expected: FileKind::Dicom
        }
    );
    assert!(err.to_string().contains("DICOM"));
    // A raw data set without preamble (no DICM at 128) is not accepted either.
    assert!(check(FileKind::Dicom, &[0x08, 0x00, 0x05, 0x00, b'C', b'S'], true).is_err());
}

#[test]
fn tiny_complete_files_are_judged_on_what_there_is() {
    let err = check(FileKind::Dicom, b"0123456789", true).unwrap_err();
    assert!(err.is_rejection(), "{err:?}");
    let err = check(FileKind::Dicom, &[0u8; 10], true).unwrap_err();
    assert_eq!(
        err,
        SniffError::TooShort {
            expected: FileKind::Dicom,
            len: 10
        }
    );
    assert!(check(FileKind::Pdf, b"%PD", true).is_err());
    assert!(check(FileKind::Png, b"", true).is_err());
    assert_eq!(check(FileKind::Text, b"", true), Ok(()));
    assert_eq!(check(FileKind::Csv, b"a,b\n", true), Ok(()));
    // A 40-byte PNG named .dcm says what it is.
    let err = check(FileKind::Dicom, &png()[..40], true).unwrap_err();
    assert!(err.to_string().contains("PNG"), "{err}");
}

#[test]
fn files_named_without_a_type_are_told_why_they_are_not_dicom() {
    let unnamed = |head: &[u8]| {
        check(FileKind::Dicom, head, true)
            .unwrap_err()
            .for_unnamed()
    };
    assert_eq!(unnamed(b""), SniffError::TooShortForDicom { len: 0 });
    assert!(unnamed(b"").to_string().contains("too short (0 bytes)"));
    assert_eq!(unnamed(&[b'a'; 4096]), SniffError::NotDicomByContent);
    assert_eq!(unnamed(b"%PDF-1.7 and more"), SniffError::NotDicomByContent);
    assert!(matches!(
        unnamed(&dicom(b"MZ")),
        SniffError::ExecutablePreamble { .. }
    ));
}

#[test]
fn incomplete_heads_ask_for_more_unless_they_already_disagree() {
    let head = &dicom(&[])[..100];
    assert_eq!(
        check(FileKind::Dicom, head, false),
        Err(SniffError::NeedMoreBytes { needed: 132 })
    );
    assert!(
        !check(FileKind::Dicom, head, false)
            .unwrap_err()
            .is_rejection()
    );
    assert_eq!(
        check(FileKind::Pdf, b"%P", false),
        Err(SniffError::NeedMoreBytes { needed: 5 })
    );
    assert!(
        check(FileKind::Pdf, b"%X", false)
            .unwrap_err()
            .is_rejection()
    );
    assert!(
        check(FileKind::Text, b"ok\0", false)
            .unwrap_err()
            .is_rejection()
    );
    assert_eq!(
        check(FileKind::Text, b"short", false),
        Err(SniffError::NeedMoreBytes { needed: 64 * 1024 })
    );
}

#[test]
fn text_with_nul_is_rejected() {
    let err = check(FileKind::Text, b"hello\0world", true).unwrap_err();
    assert_eq!(
        err,
        SniffError::NulByte {
            expected: FileKind::Text,
            offset: 5
        }
    );
    // UTF-16 text is full of NULs.
    let utf16: Vec<u8> = "a,b".encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert!(check(FileKind::Csv, &utf16, true).is_err());
}

#[test]
fn utf8_cut_at_the_end_is_fine_only_when_more_follows() {
    let mut text = "x".repeat(64 * 1024 - 1).into_bytes();
    text.extend_from_slice(&"ä".as_bytes()[..1]);
    assert_eq!(check(FileKind::Text, &text, false), Ok(()));
    assert_eq!(
        check(FileKind::Text, &text, true),
        Err(SniffError::InvalidUtf8 {
            expected: FileKind::Text
        })
    );
    // Three bytes of a four-byte character.
    let mut csv = "a".repeat(70_000).into_bytes();
    csv.extend_from_slice(&"😀".as_bytes()[..3]);
    assert_eq!(check(FileKind::Csv, &csv, false), Ok(()));
    assert!(check(FileKind::Csv, &csv, true).is_err());
}

#[test]
fn invalid_utf8_inside_is_rejected_even_when_incomplete() {
    let mut text = b"Latin-1: caf\xe9 au lait ".to_vec();
    text.resize(70_000, b' ');
    assert_eq!(
        check(FileKind::Text, &text, false),
        Err(SniffError::InvalidUtf8 {
            expected: FileKind::Text
        })
    );
}

fn any_kind() -> impl Strategy<Value = FileKind> {
    proptest::sample::select(ALL.to_vec())
}

/// Bytes that often start with a real signature, so the deeper branches are reached.
fn plausible_head() -> impl Strategy<Value = Vec<u8>> {
    (
        any_kind(),
        prop::collection::vec(any::<u8>(), 0..700),
        0usize..1100,
    )
        .prop_map(|(kind, noise, cut)| {
            let mut bytes = sample(kind);
            let keep = cut.min(bytes.len());
            bytes.truncate(keep);
            bytes.extend(noise);
            bytes
        })
}

proptest! {
    #[test]
    fn check_never_panics(
        kind in any_kind(),
        head in prop::collection::vec(any::<u8>(), 0..2048),
        complete in any::<bool>(),
    ) {
        let _ = check(kind, &head, complete);
    }

    #[test]
    fn check_is_consistent_on_plausible_input(
        kind in any_kind(),
        head in plausible_head(),
        complete in any::<bool>(),
    ) {
        let result = check(kind, &head, complete);
        let asks_for_more = matches!(result, Err(SniffError::NeedMoreBytes { .. }));
        if complete {
            // A whole file is always judged: never a request for more bytes.
            prop_assert!(!asks_for_more);
        }
        if let Err(err) = &result {
            prop_assert!(!err.to_string().is_empty());
        }
        if !complete && head.len() >= bytes_needed(kind) {
            prop_assert!(!asks_for_more);
        }
    }
}
