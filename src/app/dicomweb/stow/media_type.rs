//! The Content-Type of a STOW-RS request: `multipart/related; type="application/dicom";
//! boundary=...` (PS3.18 10.5.1, RFC 2387), read into the boundary or refused.

use crate::app::error::AppError;

use super::multipart::Boundary;

/// The boundary of a `multipart/related; type="application/dicom"` Content-Type. Another
/// media type, or another root type (such as the metadata-and-bulk-data form), is 415; a
/// missing or malformed boundary or `type` parameter is 400.
pub fn parse_content_type(raw: Option<&str>) -> Result<Boundary, AppError> {
    let raw = raw.ok_or_else(|| unsupported("The request has no Content-Type."))?;
    let mut pieces = split_params(raw).into_iter();
    let essence = pieces.next().unwrap_or_default().to_ascii_lowercase();
    if essence != "multipart/related" {
        return Err(unsupported(
            "STOW-RS takes multipart/related; type=\"application/dicom\" bodies.",
        ));
    }
    let (mut boundary, mut root) = (None, None);
    for piece in pieces {
        let Some((name, value)) = piece.split_once('=') else {
            return Err(bad("The Content-Type has a malformed parameter."));
        };
        let value = unquote(value.trim())
            .ok_or_else(|| bad("The Content-Type has a malformed parameter."))?;
        match name.trim().to_ascii_lowercase().as_str() {
            "boundary" => boundary = Some(value),
            "type" => root = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    match root.as_deref() {
        None => return Err(bad("The Content-Type needs type=\"application/dicom\".")),
        Some("application/dicom") => {}
        Some(_) => {
            return Err(unsupported(
                "Only type=\"application/dicom\" parts (DICOM Part 10 files) are stored.",
            ));
        }
    }
    let boundary = boundary.ok_or_else(|| bad("The Content-Type has no boundary."))?;
    Boundary::parse(&boundary).ok_or_else(|| bad("The Content-Type's boundary is malformed."))
}

fn unsupported(message: &str) -> AppError {
    AppError::refused(415, message)
}

fn bad(message: &str) -> AppError {
    AppError::BadRequest(message.into())
}

/// `a; b="x;y"; c` into its pieces, `;` inside quotes kept.
fn split_params(raw: &str) -> Vec<String> {
    let (mut out, mut current, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in raw.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                current.push(c);
                quoted = !quoted;
            }
            ';' if !quoted => out.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    out.push(current.trim().to_string());
    out
}

fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.is_empty() && !value.contains('"')).then(|| value.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: Result<Boundary, AppError>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(AppError::BadRequest(_)) => 400,
            Err(AppError::Refused(s, _)) => s,
            Err(other) => panic!("unexpected: {other}"),
        }
    }

    #[test]
    fn only_multipart_related_of_dicom_with_a_boundary_is_taken() {
        let ok = parse_content_type(Some(
            "Multipart/Related; type=\"application/dicom\"; boundary=\"a:b c\"",
        ))
        .unwrap();
        assert_eq!(ok.as_str(), "a:b c");
        assert_eq!(
            parse_content_type(Some(
                "multipart/related; type=application/dicom; boundary=x"
            ))
            .unwrap()
            .as_str(),
            "x"
        );
        for (raw, want) in [
            (None, 415),
            (Some("application/dicom"), 415),
            (Some("multipart/form-data; boundary=x"), 415),
            (
                Some("multipart/related; type=\"application/dicom+json\"; boundary=x"),
                415,
            ),
            (Some("multipart/related; boundary=x"), 400),
            (Some("multipart/related; type=\"application/dicom\""), 400),
            (
                Some("multipart/related; type=\"application/dicom\"; boundary="),
                400,
            ),
            (
                Some("multipart/related; type=\"application/dicom\"; boundary=\"x"),
                400,
            ),
            (
                Some(&format!(
                    "multipart/related; type=application/dicom; boundary={}",
                    "b".repeat(71)
                )),
                400,
            ),
            (
                Some("multipart/related; type=application/dicom; boundary=a\u{0}b"),
                400,
            ),
            (Some("multipart/related; type=application/dicom; junk"), 400),
        ] {
            assert_eq!(status(parse_content_type(raw)), want, "{raw:?}");
        }
    }
}
