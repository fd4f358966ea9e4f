use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{StreamExt as _, stream};

use super::*;

/// `body` as a stream of `chunk`-byte pieces.
fn chunked(body: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
    let pieces: Vec<_> = body
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(pieces)
}

async fn read_all<S, E>(
    reader: &mut MultipartReader<S>,
) -> Result<Vec<(PartHead, Vec<u8>)>, MultipartError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut parts = Vec::new();
    while let Some(head) = reader.next_part().await? {
        let mut body = Vec::new();
        let mut part = reader.part_body();
        while let Some(chunk) = part.next().await {
            body.extend_from_slice(&chunk?);
        }
        parts.push((head, body));
    }
    Ok(parts)
}

fn boundary() -> Boundary {
    Boundary::parse("b0und").unwrap()
}

fn body(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = b"preamble to skip\r\n".to_vec();
    for p in parts {
        out.extend_from_slice(b"--b0und\r\nContent-Type: application/dicom\r\n\r\n");
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--b0und--\r\nepilogue");
    out
}

#[tokio::test]
async fn parts_come_out_byte_for_byte_however_the_body_is_cut() {
    // Bytes that look like a delimiter's start but are not one stay in the part.
    let first: &[u8] = b"\r\n--b0un\r\n--b0\r\r\n";
    let second = vec![0x0d_u8; 300];
    let raw = body(&[first, &second, b""]);
    for chunk in [1, 2, 3, 7, 64, raw.len()] {
        let mut reader = MultipartReader::new(chunked(&raw, chunk), &boundary());
        let parts = read_all(&mut reader).await.unwrap();
        assert_eq!(parts.len(), 3, "chunk {chunk}");
        assert_eq!(parts[0].1, first);
        assert_eq!(parts[1].1, second);
        assert!(parts[2].1.is_empty());
        assert_eq!(
            parts[0].0.content_type.as_deref(),
            Some("application/dicom")
        );
    }
}

#[tokio::test]
async fn a_part_left_unread_is_skipped() {
    let raw = body(&[b"one", b"two"]);
    let mut reader = MultipartReader::new(chunked(&raw, 5), &boundary());
    reader.next_part().await.unwrap().unwrap();
    reader.next_part().await.unwrap().unwrap();
    let mut rest = Vec::new();
    let mut part = reader.part_body();
    while let Some(c) = part.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    assert_eq!(rest, b"two");
    assert_eq!(reader.next_part().await.unwrap(), None);
}

#[tokio::test]
async fn the_body_may_start_with_the_boundary_and_end_without_a_line_break() {
    let raw = b"--b0und\r\n\r\nabc\r\n--b0und--";
    let mut reader = MultipartReader::new(chunked(raw, 4), &boundary());
    let parts = read_all(&mut reader).await.unwrap();
    assert_eq!(parts, vec![(PartHead::default(), b"abc".to_vec())]);
}

#[tokio::test]
async fn broken_bodies_are_errors_not_hangs_or_panics() {
    let cases: Vec<(Vec<u8>, MultipartError)> = vec![
        (
            body(&[b"x"])
                .iter()
                .copied()
                .filter(|_| true)
                .collect::<Vec<_>>()[..30]
                .to_vec(),
            MultipartError::Truncated,
        ),
        (
            b"--other\r\n\r\nabc\r\n--other--".to_vec(),
            MultipartError::NoBoundary,
        ),
        (vec![b'A'; 100_000], MultipartError::NoBoundary),
        (
            b"--b0und\r\nno colon here\r\n\r\nx\r\n--b0und--".to_vec(),
            MultipartError::BadHeaders,
        ),
        (
            [b"--b0und\r\nX: ".as_slice(), &vec![b'a'; 20_000]].concat(),
            MultipartError::BadHeaders,
        ),
        (
            b"--b0undjunk\r\n\r\nx\r\n--b0und--".to_vec(),
            MultipartError::BadDelimiter,
        ),
        (b"--b0und\r\n\r\nabc".to_vec(), MultipartError::Truncated),
        (
            b"--b0und\r\n\r\nabc\r\n--b0und".to_vec(),
            MultipartError::Truncated,
        ),
    ];
    for (raw, want) in cases {
        let mut reader = MultipartReader::new(chunked(&raw, 3), &boundary());
        assert_eq!(
            read_all(&mut reader).await,
            Err(want),
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(40)])
        );
        // Errors are sticky.
        assert!(reader.next_part().await.is_err());
    }
}

#[tokio::test]
async fn the_position_counts_the_bytes_before_what_is_unread() {
    let raw = body(&[b"0123456789"]);
    let mut reader = MultipartReader::new(chunked(&raw, raw.len()), &boundary());
    reader.next_part().await.unwrap().unwrap();
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(reader.position(), start as u64);
}

#[test]
fn boundaries_follow_rfc_2046() {
    for good in ["a", "0123456789", "with space inside", "'()+_,-./:=?"] {
        assert!(Boundary::parse(good).is_some(), "{good}");
    }
    let long = "b".repeat(71);
    for bad in [
        "",
        "ends with space ",
        "semi;colon",
        "quote\"",
        "new\nline",
        long.as_str(),
    ] {
        assert!(Boundary::parse(bad).is_none(), "{bad:?}");
    }
}
