//! Creating and editing buckets. Every field is checked at once and each bad one gets its
//! own message; the form comes back (422) with what was typed, except the secret key,
//! which is never sent back to the browser.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::views::{BucketFormPage, FormValues};
use super::{FormResult, NAV, bucket_path, fields, parse_id, render, see_other};
use crate::app::buckets::service::{self, Refusal, Updated};
use crate::app::buckets::spec::BucketSpec;
use crate::app::buckets::{Bucket, queries};
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::bucket::EndpointPolicy;
use crate::domain::clock::Clock;
use crate::domain::ids::BucketId;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::web::bucket_form::{self as form, BucketInput, FormErrors, Mode};
use crate::web::extractors::Admin;
use crate::web::session;
use crate::web::views::Layout;

fn policy(settings: &Settings) -> EndpointPolicy {
    EndpointPolicy {
        allow_loopback: settings.allow_loopback_endpoints,
    }
}

pub async fn new_form(admin: Admin) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::OK,
        &BucketFormPage {
            layout: Layout::for_user(&admin.0, NAV),
            editing: None,
            values: FormValues::new_bucket(),
            errors: FormErrors::default(),
            has_secret: false,
            retype_secret: false,
        },
    )
}

/// The bucket to edit; the system default bucket is refused (403).
async fn editable(db: &Database, id: &BucketId) -> Result<Bucket, AppError> {
    let lookup = id.clone();
    let bucket = db.run(move |conn| queries::get(conn, &lookup)).await?;
    if bucket.is_system {
        return Err(AppError::Forbidden);
    }
    Ok(bucket)
}

pub async fn edit_form(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let bucket = editable(&db, &id).await?;
    render(
        StatusCode::OK,
        &BucketFormPage {
            layout: Layout::for_user(&admin.0, NAV),
            editing: Some(id.into_string()),
            values: FormValues::from_bucket(&bucket),
            errors: FormErrors::default(),
            has_secret: bucket.has_secret,
            retype_secret: false,
        },
    )
}

/// Checks the form, then resolves the endpoint's host (only once the rest is valid).
async fn check(
    input: &BucketInput,
    mode: Mode,
    settings: &Settings,
) -> Result<BucketSpec, Box<FormErrors>> {
    let spec = form::validate(input, mode, policy(settings))?;
    form::check_endpoint(&spec, policy(settings)).await?;
    Ok(spec)
}

/// The form again with its messages; what was typed is kept, except the secret key.
fn form_again(
    admin: &Admin,
    editing: Option<(&BucketId, bool)>,
    input: &BucketInput,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &BucketFormPage {
            layout: Layout::for_user(&admin.0, NAV),
            editing: editing.map(|(id, _)| id.as_str().to_string()),
            values: FormValues::from_input(input),
            retype_secret: input.secret_given() && errors.secret_key.is_none(),
            has_secret: editing.is_some_and(|(_, has)| has),
            errors,
        },
    )
}

fn name_taken() -> FormErrors {
    FormErrors {
        display_name: Some(Refusal::NameTaken.message()),
        ..FormErrors::default()
    }
}

pub async fn create(
    admin: Admin,
    form: FormResult<Vec<(String, String)>>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    keyring: web::Data<Keyring>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let input = BucketInput::from_pairs(fields(form)?);
    let spec = match check(&input, Mode::Create, &settings).await {
        Ok(spec) => spec,
        Err(errors) => return form_again(&admin, None, &input, *errors),
    };
    let name = spec.display_name.clone();
    match service::create(&db, &keyring, &admin.acting(), spec, clock.now_naive()).await? {
        Ok(id) => {
            session::flash(
                &admin.0.session,
                "success",
                format!(
                    "Bucket {name} created. Use Test connection to check that medport can reach it."
                ),
            );
            Ok(see_other(&bucket_path(&id)))
        }
        Err(_) => form_again(&admin, None, &input, name_taken()),
    }
}

pub async fn update(
    admin: Admin,
    path: web::Path<String>,
    form: FormResult<Vec<(String, String)>>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    keyring: web::Data<Keyring>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let bucket = match editable(&db, &id).await {
        Err(AppError::Forbidden) => {
            service::refuse_system(&db, &admin.acting(), &id, "bucket.update").await?;
            return Err(AppError::Forbidden);
        }
        other => other?,
    };
    let input = BucketInput::from_pairs(fields(form)?);
    let editing = Some((&id, bucket.has_secret));
    // Without a stored secret key a blank field has nothing to keep: it is required.
    let mode = if bucket.has_secret {
        Mode::Edit
    } else {
        Mode::Create
    };
    let spec = match check(&input, mode, &settings).await {
        Ok(spec) => spec,
        Err(errors) => return form_again(&admin, editing, &input, *errors),
    };
    let name = spec.display_name.clone();
    match service::update(&db, &keyring, &admin.acting(), &id, spec, clock.now_naive()).await? {
        Ok(Updated::Changed(changed)) => {
            let text = format!("Bucket {name} updated ({}).", changed.join(", "));
            session::flash(&admin.0.session, "success", text);
            Ok(see_other(&bucket_path(&id)))
        }
        Ok(Updated::Unchanged) => {
            session::flash(&admin.0.session, "info", "Nothing was changed.");
            Ok(see_other(&bucket_path(&id)))
        }
        Err(Refusal::SystemBucket) => Err(AppError::Forbidden),
        Err(_) => form_again(&admin, editing, &input, name_taken()),
    }
}
