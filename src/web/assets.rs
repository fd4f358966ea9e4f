//! Static assets compiled into the binary, so one file is the whole install. Served with an
//! ETag and `no-cache` (revalidate each time, 304 when unchanged).

use std::collections::HashMap;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::app::error::AppError;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ctype:literal) => {
        Asset {
            path: $path,
            content_type: $ctype,
            bytes: include_bytes!(concat!("../../static/", $path)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", "text/javascript; charset=utf-8"),
    asset!("js/upload.js", "text/javascript; charset=utf-8"),
    asset!("vendor/htmx.min.js", "text/javascript; charset=utf-8"),
    asset!(
        "vendor/tus-js-client.min.js",
        "text/javascript; charset=utf-8"
    ),
];

pub struct AssetTable {
    by_path: HashMap<&'static str, (&'static Asset, String)>,
}

impl AssetTable {
    pub fn new() -> Self {
        let by_path = ASSETS
            .iter()
            .map(|a| {
                let etag = format!("\"{}\"", hex::encode(&Sha256::digest(a.bytes)[..16]));
                (a.path, (a, etag))
            })
            .collect();
        Self { by_path }
    }
}

impl Default for AssetTable {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn serve(
    req: HttpRequest,
    path: web::Path<String>,
    table: web::Data<AssetTable>,
) -> Result<HttpResponse, AppError> {
    let (asset, etag) = table.by_path.get(path.as_str()).ok_or(AppError::NotFound)?;
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    if unchanged {
        return Ok(res.finish());
    }
    Ok(res.content_type(asset.content_type).body(asset.bytes))
}
