//! Incident response (Admin → Security): sign every user out, revoke API keys, revalidate
//! every bucket. Each action is a POST confirmed by typing a phrase; a wrong phrase shows
//! the page again with the reason and changes nothing. The changes and their audit events
//! live in `crate::app::incident`, shared with the command line. The page itself only reads.

mod actions;
mod pages;

use super::{FormResult, fields};
use crate::web::respond::{render, see_other};

crate::route_table! {
    GET "/admin/security" => pages::show,
    POST "/admin/security/sessions" => actions::sign_out_everyone,
    POST "/admin/security/api-keys" => actions::revoke_api_keys,
    POST "/admin/security/buckets" => actions::revalidate_buckets,
}

const NAV: &str = "/admin/security";
