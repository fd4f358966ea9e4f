//! The magic-byte sniffer (`sniff::check`) for every file kind, on whole files and on the
//! first bytes of a file that goes on.

use medport::app::uploads::sniff::{FileKind, SniffError, bytes_needed, check};
use proptest::prelude::*;

use crate::support::{config, ensure, mutated_bytes, replay};

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

const EXECUTABLES: &[&[u8]] = &[
    b"MZ",
    b"\x7fELF",
    b"#!",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
];

/// The magic numbers each kind is known by, as (offset, bytes): written out from the
/// formats' specifications, not taken from the code under test.
fn magics(kind: FileKind) -> &'static [(usize, &'static [u8])] {
    match kind {
        FileKind::Dicom => &[(128, b"DICM")],
        FileKind::Pdf => &[(0, b"%PDF-")],
        FileKind::Png => &[(0, b"\x89PNG\r\n\x1a\n")],
        FileKind::Jpeg => &[(0, b"\xff\xd8\xff")],
        FileKind::Zip => &[(0, b"PK\x03\x04"), (0, b"PK\x05\x06")],
        FileKind::Gzip | FileKind::NiftiGz => &[(0, b"\x1f\x8b\x08")],
        FileKind::Tar => &[(257, b"ustar")],
        FileKind::Nifti => &[(344, b"n+1\0"), (344, b"ni1\0")],
        FileKind::Text | FileKind::Csv => &[],
    }
}

fn is_text(kind: FileKind) -> bool {
    matches!(kind, FileKind::Text | FileKind::Csv)
}

/// Whether a whole file `head` is acceptable as `kind`.
fn acceptable(kind: FileKind, head: &[u8]) -> bool {
    if is_text(kind) {
        return !head.contains(&0) && std::str::from_utf8(head).is_ok();
    }
    if kind == FileKind::Dicom && EXECUTABLES.iter().any(|m| head.starts_with(m)) {
        return false;
    }
    magics(kind)
        .iter()
        .any(|(at, m)| head.get(*at..).is_some_and(|rest| rest.starts_with(m)))
}

/// What the pipeline passes: at most `bytes_needed` leading bytes.
fn view(kind: FileKind, bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(bytes_needed(kind))]
}

fn is_rejection(r: &Result<(), SniffError>) -> bool {
    r.as_ref().err().is_some_and(SniffError::is_rejection)
}

/// What must hold for `bytes` as the start of a file of `kind`, whole or not.
fn check_kind(kind: FileKind, bytes: &[u8]) -> Result<(), TestCaseError> {
    let head = view(kind, bytes);
    let whole = check(kind, head, true);
    let partial = check(kind, head, false);
    let fail = |what: &str| format!("{kind:?} {} bytes: {what}", head.len());
    // Messages are built for users: they must format.
    for r in [&whole, &partial] {
        if let Err(e) = r {
            ensure(!e.to_string().is_empty(), || fail("empty message"))?;
        }
    }
    ensure(
        !matches!(whole, Err(SniffError::NeedMoreBytes { .. })),
        || fail("a whole file asked for more bytes"),
    )?;
    ensure(
        head.len() < bytes_needed(kind)
            || !matches!(partial, Err(SniffError::NeedMoreBytes { .. })),
        || fail("enough bytes but asked for more"),
    )?;
    ensure(whole.is_ok() == acceptable(kind, head), || {
        fail(&format!("whole file judged {whole:?}"))
    })?;
    if partial.is_ok() && !is_text(kind) {
        ensure(whole.is_ok(), || {
            fail("accepted as a start, refused as a whole")
        })?;
    }
    Ok(())
}

/// How the pipeline must call `check` once `bytes` (the start of the file, or all of it
/// when `whole`) have arrived: with at most `bytes_needed` of them, and saying "whole file"
/// only when nothing was cut off. Passing `whole` with a cut head made a valid text file
/// whose 64 KiB boundary falls inside a character fail as "not UTF-8" (corpus:
/// `text-64k-cut-char-whole.bin`).
fn pipeline_check(kind: FileKind, bytes: &[u8], whole: bool) -> Result<(), SniffError> {
    let head = view(kind, bytes);
    check(kind, head, whole && head.len() == bytes.len())
}

/// A verdict on the first bytes is final: more bytes never turn a refusal into an
/// acceptance or the reverse; and a file that is acceptable as a whole is never refused.
fn check_prefix(kind: FileKind, bytes: &[u8], cut: usize) -> Result<(), TestCaseError> {
    let cut = cut.min(bytes.len());
    let early = pipeline_check(kind, &bytes[..cut], false);
    for whole in [false, true] {
        let late = pipeline_check(kind, bytes, whole);
        let fail = || {
            format!(
                "{kind:?} cut at {cut} of {}: {early:?} then {late:?}",
                bytes.len()
            )
        };
        if is_rejection(&early) {
            ensure(is_rejection(&late), fail)?;
        }
        // A start of text is judged up to its cut, a whole text file to its end: a file
        // that stops inside a character is refused as a whole although its start was fine
        // (corpus: `text-64k-ends-in-cut-char.bin`).
        if early.is_ok() && !(whole && is_text(kind)) {
            ensure(late.is_ok(), fail)?;
        }
    }
    if acceptable(kind, bytes) {
        let whole = pipeline_check(kind, bytes, true);
        ensure(whole.is_ok(), || {
            format!(
                "{kind:?}: a valid {}-byte file refused: {whole:?}",
                bytes.len()
            )
        })?;
        ensure(!is_rejection(&early), || {
            format!("{kind:?}: the first {cut} bytes of a valid file refused: {early:?}")
        })?;
    }
    Ok(())
}

fn check_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    for kind in ALL {
        check_kind(kind, bytes)?;
        for cut in [
            0,
            1,
            3,
            4,
            5,
            8,
            128,
            131,
            132,
            260,
            344,
            347,
            bytes.len() / 2,
        ] {
            check_prefix(kind, bytes, cut)?;
        }
    }
    Ok(())
}

fn kind() -> impl Strategy<Value = FileKind> {
    proptest::sample::select(ALL.to_vec())
}

fn at(offset: usize, magic: &[u8], len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len.max(offset + magic.len())];
    bytes[offset..offset + magic.len()].copy_from_slice(magic);
    bytes
}

/// A plausible start of a file of `kind` (for text: a short text).
fn sample(kind: FileKind, preamble: &[u8]) -> Vec<u8> {
    let mut bytes = match magics(kind).first() {
        Some((offset, magic)) => at(*offset, magic, offset + magic.len() + 16),
        None => "Befund: unauffällig;größe\n".as_bytes().to_vec(),
    };
    let n = preamble.len().min(128);
    if kind == FileKind::Dicom {
        bytes[..n].copy_from_slice(&preamble[..n]);
    }
    if kind == FileKind::Nifti {
        bytes[..4].copy_from_slice(&348u32.to_le_bytes());
    }
    bytes
}

fn preamble() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::sample::select(EXECUTABLES.to_vec()).prop_map(<[u8]>::to_vec),
        prop::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Text heads near the 64 KiB the check reads: a short text repeated, cut anywhere (also
/// inside a character), sometimes with a NUL or a stray byte.
fn text_head() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![7 => 0usize..300, 1 => 65_530usize..65_545];
    (
        "[a-zé€😀;,\n]{1,12}",
        len,
        prop::option::of((
            0usize..65_545,
            prop_oneof![Just(0u8), Just(0xff), Just(0xc3)],
        )),
    )
        .prop_map(|(unit, len, stray)| {
            let mut bytes = unit.as_bytes().repeat(len / unit.len() + 1);
            bytes.truncate(len);
            if let Some((at, b)) = stray
                && !bytes.is_empty()
            {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            bytes
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sniff_any_bytes(k in kind(), bytes in prop::collection::vec(any::<u8>(), 0..700), cut in 0usize..700) {
        check_kind(k, &bytes)?;
        check_prefix(k, &bytes, cut)?;
    }

    #[test]
    fn sniff_mutated_samples(
        (k, bytes) in kind().prop_flat_map(|k| {
            (Just(k), mutated_bytes(preamble().prop_map(move |p| sample(k, &p))))
        }),
        cut in 0usize..400,
    ) {
        check_kind(k, &bytes)?;
        check_prefix(k, &bytes, cut)?;
    }

    #[test]
    fn sniff_text_near_the_limit(
        text in proptest::sample::select(vec![FileKind::Text, FileKind::Csv]),
        bytes in text_head(),
        cut in 0usize..65_545,
    ) {
        check_kind(text, &bytes)?;
        check_prefix(text, &bytes, cut)?;
    }
}

#[test]
fn sniff_corpus() {
    replay("sniff", |_, bytes| check_all(bytes));
}
