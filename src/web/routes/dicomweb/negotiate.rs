//! `Accept` negotiation (PS3.18 8.7): what the client will take, against what a resource
//! can be sent as. A missing header accepts anything; ranges with `q=0` are refusals.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::app::dicomweb::wado::Syntax;
use crate::app::error::AppError;

/// One media range: type/subtype (lower-case) and its parameters (names lower-case,
/// quotes removed).
struct Range {
    essence: String,
    params: Vec<(String, String)>,
}

impl Range {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The ranges of every Accept header, or `None` when there is none.
fn ranges(req: &HttpRequest) -> Option<Vec<Range>> {
    let mut out = Vec::new();
    let mut any = false;
    for value in req.headers().get_all(header::ACCEPT) {
        any = true;
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut pieces = item.split(';');
            let essence = pieces
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if essence.is_empty() {
                continue;
            }
            let params: Vec<(String, String)> = pieces
                .filter_map(|p| p.split_once('='))
                .map(|(n, v)| {
                    (
                        n.trim().to_ascii_lowercase(),
                        v.trim().trim_matches('"').to_string(),
                    )
                })
                .collect();
            let refused = params
                .iter()
                .any(|(n, v)| n == "q" && v.parse::<f32>().is_ok_and(|q| q <= 0.0));
            if !refused {
                out.push(Range { essence, params });
            }
        }
    }
    any.then_some(out)
}

/// For a DICOM JSON answer (searches, metadata).
pub fn json(req: &HttpRequest) -> Result<(), AppError> {
    let Some(ranges) = ranges(req) else {
        return Ok(());
    };
    let ok = ranges.iter().any(|r| {
        matches!(
            r.essence.as_str(),
            "*/*" | "application/*" | "application/dicom+json" | "application/json"
        )
    });
    if ok {
        Ok(())
    } else {
        Err(AppError::refused(
            406,
            "this resource is sent as application/dicom+json only",
        ))
    }
}

/// For stored instances: `multipart/related; type="application/dicom"`, in the stored
/// transfer syntax (`transfer-syntax=*` or none named) or exactly one named.
pub fn instances(req: &HttpRequest) -> Result<Syntax, AppError> {
    let Some(ranges) = ranges(req) else {
        return Ok(Syntax::Stored);
    };
    let mut exact: Option<Syntax> = None;
    for r in &ranges {
        let dicom_parts = match r.essence.as_str() {
            "*/*" | "multipart/*" => return Ok(Syntax::Stored),
            "multipart/related" => r
                .param("type")
                .is_none_or(|t| t.eq_ignore_ascii_case("application/dicom")),
            _ => false,
        };
        if !dicom_parts {
            continue;
        }
        match r.param("transfer-syntax") {
            None | Some("*") => return Ok(Syntax::Stored),
            Some(uid) => {
                exact.get_or_insert_with(|| Syntax::Exactly(uid.to_string()));
            }
        }
    }
    exact.ok_or_else(|| {
        AppError::refused(
            406,
            "instances are sent as multipart/related; type=\"application/dicom\" in their \
             stored transfer syntax; rendered media, bulk data and single-part responses are \
             not offered",
        )
    })
}
