//! Page models for the bucket pages: one template struct per page or fragment, and the
//! rows they show. Nothing here holds a secret key.

use askama::Template;
use askama_web::WebTemplate;

use crate::app::buckets::opener::{Health, StepResult};
use crate::app::buckets::queries::{Candidate, GrantView, UploadCounts};
use crate::app::buckets::security::SecurityItem;
use crate::app::buckets::{ALLOWED_EXTENSIONS, Backend, Bucket};
use crate::domain::bucket::AWS_REGIONS;
use crate::web::bucket_form::{BucketInput, FormErrors};
use crate::web::views::Layout;

/// One line of the list.
pub struct ListRow {
    pub bucket: Bucket,
    pub grants: i64,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_buckets.html")]
pub struct BucketListPage {
    pub layout: Layout,
    pub rows: Vec<ListRow>,
}

/// Messages shown in the section they are about.
#[derive(Default)]
pub struct PageErrors {
    pub grant: Option<String>,
    pub delete: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_buckets_show.html")]
pub struct BucketPage {
    pub layout: Layout,
    pub bucket: Bucket,
    pub grants: Vec<GrantView>,
    pub candidates: Vec<Candidate>,
    pub uploads: UploadCounts,
    pub errors: PageErrors,
    /// "Test connection" results, when the page answers that button.
    pub tests: Option<Vec<StepResult>>,
}

impl BucketPage {
    pub fn is_local(&self) -> bool {
        self.bucket.backend == Backend::Local
    }
}

pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// The form's values as typed (or as stored, when editing). Never the secret key.
#[derive(Default)]
pub struct FormValues {
    pub display_name: String,
    pub bucket_name: String,
    pub region: String,
    pub endpoint: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub encryption: String,
    pub kms_key_id: String,
    pub size_limit: String,
    pub extensions: Vec<String>,
    pub notes: String,
}

impl FormValues {
    pub fn new_bucket() -> Self {
        Self {
            encryption: "sse-s3".into(),
            ..Self::default()
        }
    }

    pub fn from_input(input: &BucketInput) -> Self {
        Self {
            display_name: input.display_name.clone(),
            bucket_name: input.bucket_name.clone(),
            region: input.region.clone(),
            endpoint: input.endpoint.clone(),
            path_style: input.path_style,
            access_key_id: input.access_key_id.clone(),
            encryption: input.encryption.clone(),
            kms_key_id: input.kms_key_id.clone(),
            size_limit: input.size_limit.clone(),
            extensions: input.extensions.clone(),
            notes: input.notes.clone(),
        }
    }

    pub fn from_bucket(bucket: &Bucket) -> Self {
        Self {
            display_name: bucket.display_name.clone(),
            bucket_name: bucket.bucket_name.clone(),
            region: bucket.region.clone().unwrap_or_default(),
            endpoint: bucket.endpoint.clone().unwrap_or_default(),
            path_style: bucket.path_style,
            access_key_id: bucket.access_key_id.clone().unwrap_or_default(),
            encryption: bucket.encryption.as_str().to_string(),
            kms_key_id: bucket
                .encryption
                .kms_key_id()
                .unwrap_or_default()
                .to_string(),
            size_limit: bucket.size_limit.map(|n| n.to_string()).unwrap_or_default(),
            extensions: if bucket.extensions.is_all() {
                Vec::new()
            } else {
                bucket
                    .extensions
                    .list()
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            },
            notes: bucket.notes.clone(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_buckets_form.html")]
pub struct BucketFormPage {
    pub layout: Layout,
    /// The bucket being edited; `None` for a new one.
    pub editing: Option<String>,
    pub values: FormValues,
    pub errors: FormErrors,
    /// Editing a bucket whose secret key is stored: blank keeps it.
    pub has_secret: bool,
    /// A secret key was typed but the form came back: it must be typed again.
    pub retype_secret: bool,
}

impl BucketFormPage {
    pub fn regions(&self) -> &'static [&'static str] {
        AWS_REGIONS
    }

    pub fn encryptions(&self) -> Vec<Choice> {
        [
            ("none", "None"),
            ("sse-s3", "SSE-S3 (AES-256, keys managed by the server)"),
            ("sse-kms", "SSE-KMS (a KMS key you name)"),
        ]
        .into_iter()
        .map(|(value, label)| Choice {
            value,
            label,
            selected: self.values.encryption == value,
        })
        .collect()
    }

    pub fn extension_choices(&self) -> Vec<Choice> {
        ALLOWED_EXTENSIONS
            .iter()
            .map(|ext| Choice {
                value: ext,
                label: ext,
                selected: self.values.extensions.iter().any(|e| e == ext),
            })
            .collect()
    }

    pub fn action(&self) -> String {
        match &self.editing {
            Some(id) => format!("/admin/buckets/{id}"),
            None => "/admin/buckets".to_string(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_buckets_health.html")]
pub struct HealthFragment {
    pub health: Health,
}

impl HealthFragment {
    pub fn reason(&self) -> &str {
        match &self.health {
            Health::Reachable => "",
            Health::Unreachable(reason) => reason,
        }
    }

    pub fn reachable(&self) -> bool {
        self.health == Health::Reachable
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_buckets_security.html")]
pub struct SecurityFragment {
    pub items: Vec<SecurityItem>,
}
