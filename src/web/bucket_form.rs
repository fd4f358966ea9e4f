//! The bucket form: raw input in, a validated [`BucketSpec`] or one message per bad field
//! out. The secret key is held in a `SecretString` from the moment it is read and is never
//! put back into a page, a message or a log line.

use secrecy::{ExposeSecret, SecretString};

use crate::app::buckets::extensions::Extensions;
use crate::app::buckets::size::parse_size_limit;
use crate::app::buckets::spec::BucketSpec;
use crate::domain::FieldError;
use crate::domain::bucket::{BucketName, Endpoint, EndpointPolicy, Region};
use crate::domain::bucket::{Encryption, parse_display_name, parse_notes};
pub use crate::domain::bucket::{check_secret_key, parse_access_key_id, parse_kms_key_id};

/// What the form sent, as typed. `Debug` never shows the secret.
#[derive(Default)]
pub struct BucketInput {
    pub display_name: String,
    pub bucket_name: String,
    pub region: String,
    pub endpoint: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_key: SecretString,
    pub encryption: String,
    pub kms_key_id: String,
    pub size_limit: String,
    pub extensions: Vec<String>,
    pub notes: String,
}

impl std::fmt::Debug for BucketInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketInput")
            .field("display_name", &self.display_name)
            .field("bucket_name", &self.bucket_name)
            .field("secret_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl BucketInput {
    /// From the urlencoded pairs (the extension boxes repeat one name). Unknown names, such
    /// as `csrf_token`, are ignored.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut input = Self {
            encryption: "none".into(),
            ..Self::default()
        };
        for (name, value) in pairs {
            match name.as_str() {
                "display_name" => input.display_name = value,
                "bucket_name" => input.bucket_name = value,
                "region" => input.region = value,
                "endpoint" => input.endpoint = value,
                "path_style" => input.path_style = matches!(value.as_str(), "on" | "true" | "1"),
                "access_key_id" => input.access_key_id = value,
                "secret_key" => input.secret_key = SecretString::from(value),
                "encryption" => input.encryption = value,
                "kms_key_id" => input.kms_key_id = value,
                "size_limit" => input.size_limit = value,
                "extensions" => input.extensions.push(value),
                "notes" => input.notes = value,
                _ => {}
            }
        }
        input
    }

    pub fn secret_given(&self) -> bool {
        !self.secret_key.expose_secret().is_empty()
    }
}

/// One message per field, shown under it.
#[derive(Debug, Default, Clone)]
pub struct FormErrors {
    pub display_name: Option<String>,
    pub bucket_name: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_key: Option<String>,
    pub encryption: Option<String>,
    pub kms_key_id: Option<String>,
    pub size_limit: Option<String>,
    pub extensions: Option<String>,
    pub notes: Option<String>,
    /// Not about one field (a rule such as a name already in use is put on its field).
    pub form: Option<String>,
}

impl FormErrors {
    pub fn is_empty(&self) -> bool {
        [
            &self.display_name,
            &self.bucket_name,
            &self.region,
            &self.endpoint,
            &self.access_key_id,
            &self.secret_key,
            &self.encryption,
            &self.kms_key_id,
            &self.size_limit,
            &self.extensions,
            &self.notes,
            &self.form,
        ]
        .iter()
        .all(|e| e.is_none())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    /// Editing: a blank secret keeps the stored one.
    Edit,
}

/// "Bucket name" + "must be ..." -> "Bucket name must be ...".
fn message(label: &str, e: FieldError) -> String {
    format!("{label} {}.", e.message)
}

/// The encryption mode and, for SSE-KMS, its key. (A KMS key typed with another mode is
/// not kept.)
fn parse_encryption(mode: &str, kms: &str) -> Result<Encryption, (Option<String>, Option<String>)> {
    match mode {
        "none" => Ok(Encryption::None),
        "sse-s3" => Ok(Encryption::SseS3),
        "sse-kms" => parse_kms_key_id(kms)
            .map(|key_id| Encryption::SseKms { key_id })
            .map_err(|e| {
                let text = if kms.trim().is_empty() {
                    "KMS key id is required for SSE-KMS.".to_string()
                } else {
                    message("KMS key id", e)
                };
                (None, Some(text))
            }),
        _ => Err((
            Some("Encryption must be None, SSE-S3 or SSE-KMS.".to_string()),
            None,
        )),
    }
}

/// Checks every field, so the form comes back with all its problems at once.
pub fn validate(
    input: &BucketInput,
    mode: Mode,
    policy: EndpointPolicy,
) -> Result<BucketSpec, Box<FormErrors>> {
    let mut errors = FormErrors::default();
    let display_name = parse_display_name(&input.display_name)
        .map_err(|e| errors.display_name = Some(message("Display name", e)));
    let bucket_name = BucketName::parse(&input.bucket_name)
        .map_err(|e| errors.bucket_name = Some(message("Bucket name", e)));
    let endpoint_raw = input.endpoint.trim();
    let endpoint = if endpoint_raw.is_empty() {
        Ok(None)
    } else {
        Endpoint::parse(endpoint_raw, policy)
            .map(Some)
            .map_err(|e| errors.endpoint = Some(message("Endpoint URL", e)))
    };
    // A custom endpoint (even one with its own problem) allows any well-formed region.
    let region = if input.region.trim().is_empty() {
        errors.region = Some("Region is required.".into());
        Err(())
    } else {
        Region::parse(&input.region, !endpoint_raw.is_empty())
            .map_err(|e| errors.region = Some(message("Region", e)))
    };
    let access_key_id = parse_access_key_id(&input.access_key_id)
        .map_err(|e| errors.access_key_id = Some(message("Access key id", e)));
    let secret_raw = input.secret_key.expose_secret();
    let secret_key = if secret_raw.is_empty() && mode == Mode::Edit {
        Ok(None)
    } else {
        check_secret_key(secret_raw)
            .map(|()| Some(input.secret_key.clone()))
            .map_err(|e| errors.secret_key = Some(message("Secret key", e)))
    };
    let encryption = parse_encryption(input.encryption.trim(), &input.kms_key_id).map_err(
        |(mode_error, kms_error)| {
            errors.encryption = mode_error;
            errors.kms_key_id = kms_error;
        },
    );
    let size_limit = parse_size_limit(&input.size_limit)
        .map_err(|e| errors.size_limit = Some(message("Size limit", e)));
    let extensions = Extensions::parse(&input.extensions)
        .map_err(|e| errors.extensions = Some(message("Allowed file types", e)));
    let notes = parse_notes(&input.notes).map_err(|e| errors.notes = Some(message("Notes", e)));
    match (
        display_name,
        bucket_name,
        region,
        endpoint,
        access_key_id,
        secret_key,
        encryption,
        size_limit,
        extensions,
        notes,
    ) {
        (
            Ok(display_name),
            Ok(bucket_name),
            Ok(region),
            Ok(endpoint),
            Ok(access_key_id),
            Ok(secret_key),
            Ok(encryption),
            Ok(size_limit),
            Ok(extensions),
            Ok(notes),
        ) => Ok(BucketSpec {
            display_name,
            bucket_name,
            region,
            endpoint,
            path_style: input.path_style,
            access_key_id,
            secret_key,
            encryption,
            size_limit,
            extensions,
            notes,
        }),
        _ => Err(Box::new(errors)),
    }
}

/// Resolves the endpoint's host and checks every address it names (a public-looking name
/// may point at a metadata service or this host).
pub async fn check_endpoint(
    spec: &BucketSpec,
    policy: EndpointPolicy,
) -> Result<(), Box<FormErrors>> {
    let Some(endpoint) = &spec.endpoint else {
        return Ok(());
    };
    endpoint.check_resolved(policy).await.map_err(|e| {
        Box::new(FormErrors {
            endpoint: Some(message("Endpoint URL", e)),
            ..FormErrors::default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: EndpointPolicy = EndpointPolicy {
        allow_loopback: false,
    };

    fn good() -> BucketInput {
        BucketInput {
            display_name: "Radiology".into(),
            bucket_name: "radiology-scans".into(),
            region: "eu-central-1".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_key: SecretString::from("s3cr3t/KEY+value"),
            encryption: "sse-s3".into(),
            ..BucketInput::default()
        }
    }

    #[test]
    fn a_good_form_is_accepted() {
        let spec = validate(&good(), Mode::Create, STRICT).unwrap();
        assert_eq!(spec.bucket_name.as_str(), "radiology-scans");
        assert!(spec.secret_key.is_some() && spec.endpoint.is_none());
        assert_eq!(spec.encryption, Encryption::SseS3);
    }

    #[test]
    fn every_bad_field_has_its_own_message() {
        let input = BucketInput {
            display_name: " ".into(),
            bucket_name: "Bad_Name".into(),
            region: "moon-1".into(),
            endpoint: "http://169.254.169.254".into(),
            access_key_id: "has space".into(),
            secret_key: SecretString::from(""),
            encryption: "sse-kms".into(),
            size_limit: "-5".into(),
            extensions: vec!["exe".into()],
            notes: "ok".into(),
            ..BucketInput::default()
        };
        let e = validate(&input, Mode::Create, STRICT).err().unwrap();
        for (field, text) in [
            (&e.display_name, "Display name is required."),
            (
                &e.endpoint,
                "Endpoint URL points at a cloud metadata service.",
            ),
            (&e.secret_key, "Secret key is required."),
            (&e.kms_key_id, "KMS key id is required for SSE-KMS."),
        ] {
            assert_eq!(field.as_deref(), Some(text));
        }
        for field in [
            &e.bucket_name,
            &e.access_key_id,
            &e.size_limit,
            &e.extensions,
        ] {
            assert!(field.is_some());
        }
        // With an endpoint given, any well-formed region is fine.
        assert!(e.region.is_none() && e.notes.is_none());
    }

    #[test]
    fn a_blank_secret_is_kept_on_edit_only() {
        let mut input = good();
        input.secret_key = SecretString::from("");
        assert!(validate(&input, Mode::Create, STRICT).is_err());
        assert!(
            validate(&input, Mode::Edit, STRICT)
                .unwrap()
                .secret_key
                .is_none()
        );
    }

    #[test]
    fn messages_never_contain_the_secret() {
        let mut input = good();
        input.secret_key = SecretString::from(format!("topsecret {}", "x".repeat(300)));
        let e = validate(&input, Mode::Create, STRICT).err().unwrap();
        assert!(!format!("{e:?} {input:?}").contains("topsecret"));
    }
}
