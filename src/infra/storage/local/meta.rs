//! The two small metadata files of the local store: an upload's manifest and an object's
//! index. Both are text: a format line, the sealed data key (hex), then JSON. The index also
//! carries a MAC over its JSON, so a changed part list, size or order is detected.
//!
//! The sealed data key sits on a line of its own, outside the MAC, so that a master key
//! rotation can re-seal it by rewriting only these small files (atomically).

use serde::{Deserialize, Serialize};

use super::files::BlobName;
use super::format::UploadKeys;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::storage::blob::{
    LOCAL_SSE, MultipartId, ObjectInfo, ObjectKey, Result, StorageError,
};

const MANIFEST_FORMAT: &str = "medport-upload-v1";
const INDEX_FORMAT: &str = "medport-object-v1";
const INDEX_MAC_LABEL: &[u8] = b"medport-index-v1";

fn integrity(what: &str) -> StorageError {
    StorageError::Integrity(what.to_string())
}

/// `multipart/<id>/upload`: which key the upload is for and its sealed data key.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub key: ObjectKey,
    pub sealed_key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ManifestBody {
    key: String,
    id: String,
    created_unix: i64,
}

impl Manifest {
    pub fn encode(&self, id: &MultipartId) -> Result<Vec<u8>> {
        let body = ManifestBody {
            key: self.key.as_str().to_string(),
            id: id.as_str().to_string(),
            created_unix: chrono::Utc::now().timestamp(),
        };
        let json = serde_json::to_string(&body).map_err(|e| StorageError::Io(e.to_string()))?;
        let sealed = hex::encode(&self.sealed_key);
        Ok(format!("{MANIFEST_FORMAT}\n{sealed}\n{json}\n").into_bytes())
    }

    /// Parses a manifest; its key is authenticated later, when the data key is opened with
    /// the key as associated data.
    pub fn decode(bytes: &[u8], id: &MultipartId) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|_| integrity("manifest is not text"))?;
        let mut lines = text.splitn(3, '\n');
        if lines.next() != Some(MANIFEST_FORMAT) {
            return Err(integrity("manifest has an unknown format"));
        }
        let sealed_key = lines
            .next()
            .and_then(|l| hex::decode(l).ok())
            .ok_or_else(|| integrity("manifest has no sealed key"))?;
        let body: ManifestBody = lines
            .next()
            .and_then(|l| serde_json::from_str(l.trim_end()).ok())
            .ok_or_else(|| integrity("manifest body is malformed"))?;
        if body.id != id.as_str() {
            return Err(integrity("manifest belongs to another upload"));
        }
        let key = ObjectKey::parse(&body.key).ok_or_else(|| integrity("manifest key"))?;
        Ok(Self { key, sealed_key })
    }

    pub fn keys(&self, keyring: &Keyring) -> Result<UploadKeys> {
        UploadKeys::open(keyring, &self.key, &self.sealed_key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPart {
    pub number: u16,
    pub size: u64,
    pub etag: String,
    /// Only for parts whose file recorded the plaintext's SHA-256 (format `MPP1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexBody {
    pub key: String,
    pub upload_id: String,
    pub blob: String,
    pub size: u64,
    pub etag: String,
    /// Only for objects whose every part recorded its SHA-256 (format `MPP1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
    pub parts: Vec<IndexPart>,
}

/// `index/<hh>/<hash>`: a completed object.
#[derive(Debug)]
pub struct Index {
    pub body: IndexBody,
    pub blob: BlobName,
    pub keys: UploadKeys,
}

impl Index {
    pub fn encode(body: &IndexBody, sealed_key: &[u8], keys: &UploadKeys) -> Result<Vec<u8>> {
        let json = serde_json::to_string(body).map_err(|e| StorageError::Io(e.to_string()))?;
        let mac = hex::encode(keys.mac(&[INDEX_MAC_LABEL, json.as_bytes()]));
        let sealed = hex::encode(sealed_key);
        Ok(format!("{INDEX_FORMAT}\n{sealed}\n{mac}\n{json}\n").into_bytes())
    }

    /// Parses and authenticates an index for `key`.
    pub fn decode(bytes: &[u8], key: &ObjectKey, keyring: &Keyring) -> Result<Self> {
        let (sealed, mac, json) = split_index(bytes)?;
        let keys = UploadKeys::open(keyring, key, &sealed)?;
        if !keys.verify(&[INDEX_MAC_LABEL, json.as_bytes()], &mac) {
            return Err(integrity("object index failed authentication"));
        }
        let body: IndexBody =
            serde_json::from_str(json).map_err(|_| integrity("object index is malformed"))?;
        if body.key != key.as_str() {
            return Err(integrity("object index belongs to another key"));
        }
        let blob = BlobName::parse(&body.blob).ok_or_else(|| integrity("object index blob"))?;
        Ok(Self { body, blob, keys })
    }

    /// Only the data directory, without authentication: enough to delete what an index
    /// points at even when it no longer opens.
    pub fn blob_unverified(bytes: &[u8]) -> Option<BlobName> {
        let (_, _, json) = split_index(bytes).ok()?;
        let body: IndexBody = serde_json::from_str(json).ok()?;
        BlobName::parse(&body.blob)
    }

    pub fn info(&self) -> ObjectInfo {
        ObjectInfo {
            size: self.body.size,
            etag: self.body.etag.clone(),
            sse: Some(LOCAL_SSE.to_string()),
            checksum_sha256: self.body.checksum_sha256.clone(),
        }
    }
}

fn split_index(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>, &str)> {
    let text = std::str::from_utf8(bytes).map_err(|_| integrity("object index is not text"))?;
    let mut lines = text.splitn(4, '\n');
    if lines.next() != Some(INDEX_FORMAT) {
        return Err(integrity("object index has an unknown format"));
    }
    let mut hex_line = |what: &str| {
        lines
            .next()
            .and_then(|l| hex::decode(l).ok())
            .ok_or_else(|| integrity(what))
    };
    let sealed = hex_line("object index has no sealed key")?;
    let mac = hex_line("object index has no MAC")?;
    let json = lines
        .next()
        .map(str::trim_end)
        .ok_or_else(|| integrity("object index has no body"))?;
    Ok((sealed, mac, json))
}
