//! A bucket as an administrator described it, every value checked: what the bucket service
//! creates or updates. The admin form (`web::bucket_form`) builds it.

use secrecy::SecretString;

use crate::app::buckets::extensions::Extensions;
use crate::domain::bucket::{BucketName, Encryption, Endpoint, Region};

/// A bucket as the admin described it, every value checked.
pub struct BucketSpec {
    pub display_name: String,
    pub bucket_name: BucketName,
    pub region: Region,
    pub endpoint: Option<Endpoint>,
    pub path_style: bool,
    pub access_key_id: String,
    /// `None` on edit when the field was left blank: the stored secret is kept.
    pub secret_key: Option<SecretString>,
    pub encryption: Encryption,
    pub size_limit: Option<u64>,
    pub extensions: Extensions,
    pub notes: String,
}
