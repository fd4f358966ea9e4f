use actix_web::web;
use serde::Deserialize;

use crate::domain::LocalPath;
use crate::views::{Layout, LoginPage};

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(query: web::Query<LoginQuery>) -> LoginPage {
    LoginPage {
        layout: Layout::anonymous(""),
        error: None,
        email: String::new(),
        next: LocalPath::or_home(query.next.as_deref())
            .as_str()
            .to_string(),
    }
}
