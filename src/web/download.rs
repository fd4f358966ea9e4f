//! A download as HTTP, shared by the download page and the API: the single `Range` asked
//! for, the 416 answer, and the response that streams the bytes. The bytes are always sent
//! as an attachment of type `application/octet-stream`: the type the client declared is
//! never echoed, so a stored file cannot become a page on this origin.

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::app::uploads::download::Download;
use crate::app::uploads::filename::content_disposition;
use crate::infra::storage::blob::{ByteRange, RangeError};

/// The single range asked for, if any and usable. A malformed or multi-range header is
/// ignored (the whole file is sent), as HTTP allows; an unsatisfiable one is refused.
pub fn requested_range(req: &HttpRequest, size: u64) -> Result<Option<ByteRange>, RangeError> {
    let Some(raw) = req.headers().get(header::RANGE) else {
        return Ok(None);
    };
    let Ok(raw) = raw.to_str() else {
        return Ok(None);
    };
    match ByteRange::parse_http(raw, size) {
        Ok(range) => Ok(Some(range)),
        Err(RangeError::Malformed) => Ok(None),
        Err(RangeError::Unsatisfiable) => Err(RangeError::Unsatisfiable),
    }
}

/// 416 with the size, so the client can ask again.
pub fn range_not_satisfiable(size: u64) -> HttpResponse {
    HttpResponse::RangeNotSatisfiable()
        .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
        .finish()
}

/// The headers every download carries, on `builder` (200, 206 or 304).
pub fn download_headers(builder: &mut HttpResponseBuilder) {
    builder
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
}

/// 200 with the whole file, or 206 with the range; `more` adds headers (an ETag).
pub fn stream(download: Download, more: impl FnOnce(&mut HttpResponseBuilder)) -> HttpResponse {
    let status = if download.span.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut res = HttpResponse::build(status);
    res.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    ))
    .insert_header((
        header::CONTENT_DISPOSITION,
        content_disposition(&download.name),
    ));
    download_headers(&mut res);
    if let Some((start, end)) = download.span {
        res.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{}", download.size),
        ));
    }
    more(&mut res);
    res.body(SizedStream::new(download.length, download.stream))
}

/// The strong ETag of a stored file: its SHA-256, which changes exactly when the bytes do.
pub fn etag_of(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether `If-None-Match` names `etag` (or is `*`): the client's copy is current.
/// If-None-Match compares weakly (RFC 9110 13.1.2), so `W/"x"` matches `"x"`.
pub fn none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// 304 for a client whose copy is current: no body, the ETag and the download headers.
pub fn not_modified(etag: &str) -> HttpResponse {
    let mut res = HttpResponse::NotModified();
    download_headers(&mut res);
    res.insert_header((header::ETAG, etag.to_string())).finish()
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let tag = etag_of("abc");
        let hits = |value: &str| {
            let req = TestRequest::default()
                .insert_header((header::IF_NONE_MATCH, value))
                .to_http_request();
            none_match_hits(&req, &tag)
        };
        assert!(hits("\"abc\""));
        assert!(hits("W/\"abc\""));
        assert!(hits("\"x\", \"abc\""));
        assert!(hits("*"));
        assert!(!hits("\"abcd\""));
        assert!(!hits("abc"));
        assert!(!none_match_hits(
            &TestRequest::default().to_http_request(),
            &tag
        ));
    }
}
