//! A bucket's [`Encryption`] in S3's terms: what a write asks for, and the
//! `x-amz-server-side-encryption` value that shows an object got it.

use aws_sdk_s3::types::ServerSideEncryption;

use crate::domain::bucket::Encryption;

/// What a write asks for: `x-amz-server-side-encryption` and, for SSE-KMS, the key id. Both
/// `None` with no encryption: the bucket's default encryption, if any, applies.
pub(super) fn requested(e: &Encryption) -> (Option<ServerSideEncryption>, Option<String>) {
    match e {
        Encryption::None => (None, None),
        Encryption::SseS3 => (Some(ServerSideEncryption::Aes256), None),
        Encryption::SseKms { key_id } => (Some(ServerSideEncryption::AwsKms), Some(key_id.clone())),
    }
}

/// The `x-amz-server-side-encryption` value S3 reports for an object written with `e`.
pub(super) fn header(e: &Encryption) -> Option<&'static str> {
    match e {
        Encryption::None => None,
        Encryption::SseS3 => Some("AES256"),
        Encryption::SseKms { .. } => Some("aws:kms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert_eq!(header(&Encryption::None), None);
        assert_eq!(header(&Encryption::SseS3), Some("AES256"));
        let kms = Encryption::SseKms { key_id: "k".into() };
        assert_eq!(header(&kms), Some("aws:kms"));
    }

    #[test]
    fn requests_match_the_reported_header() {
        // What is asked for is what the completion check then expects to see.
        let kms = Encryption::SseKms { key_id: "k".into() };
        for e in [Encryption::None, Encryption::SseS3, kms] {
            let (asked, _) = requested(&e);
            assert_eq!(asked.as_ref().map(ServerSideEncryption::as_str), header(&e));
        }
        assert_eq!(
            requested(&Encryption::SseKms { key_id: "k".into() })
                .1
                .as_deref(),
            Some("k")
        );
        assert_eq!(requested(&Encryption::SseS3).1, None);
    }
}
