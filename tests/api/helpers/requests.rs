//! Upload requests as their two sides use them: an owner creating one through the form (the
//! link read from the page that shows it once), and a sender with no account opening the
//! link in a browser of their own.

use super::{TestApp, location};
use crate::tus_support::Tus;

/// A request just made, with the link its page showed once.
pub struct MadeRequest {
    pub id: String,
    /// `/r/{token}`
    pub path: String,
    pub token: String,
}

/// The fields of a request form; tests change what they need.
pub fn request_form() -> Vec<(&'static str, String)> {
    vec![
        ("title", "CD from St Mary's".into()),
        ("instructions", "The whole CD, please.".into()),
        ("expires_days", "7".into()),
        ("max_files", "50".into()),
        ("max_megabytes", "100".into()),
        ("required", "name".into()),
        ("required", "email".into()),
    ]
}

/// A sender with no account, in a browser of their own, after the link's form.
pub struct Sender {
    pub client: reqwest::Client,
    pub csrf: String,
}

impl Sender {
    pub fn tus(&self, app: &TestApp) -> Tus {
        Tus::with_browser(app, self.client.clone(), self.csrf.clone()).at("/tus/send/")
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.client
            .get(app.url(path))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, app: &TestApp, path: &str) -> reqwest::Response {
        app.post_with_token(&self.client, path, &[], &self.csrf)
            .await
    }
}

impl TestApp {
    /// Creates a request from the main browser (signed in) with `fields` (the bucket is the
    /// first one the form offers unless given) and reads the link from the page.
    pub async fn make_request(&self, fields: &[(&str, String)]) -> MadeRequest {
        let (status, html) = self.page("/requests/new").await;
        assert_eq!(status, 200, "{html}");
        let mut all: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bucket = regex::Regex::new(r#"<option value="([^"]+)""#)
            .unwrap()
            .captures(&html)
            .map(|c| c[1].to_string())
            .expect("a bucket to choose");
        if !fields.iter().any(|(k, _)| *k == "bucket") {
            all.push(("bucket", &bucket));
        }
        let res = self
            .post_form_from("/requests/new", "/requests", &all)
            .await;
        let status = res.status();
        let html = res.text().await.unwrap();
        assert_eq!(status, 200, "create request: {html}");
        let link = regex::Regex::new(r#"id="request-link"[^>]*value="([^"]+)""#)
            .unwrap()
            .captures(&html)
            .map(|c| c[1].to_string())
            .expect("the link on the page");
        let id = regex::Regex::new(r#"href="/requests/([0-9a-f-]{36})""#)
            .unwrap()
            .captures(&html)
            .map(|c| c[1].to_string())
            .expect("the request's page");
        // Absolute: on this server, or on the public address when one is set.
        assert!(link.starts_with("http"), "{link}");
        let path = link[link.find("/r/").expect("a link path")..].to_string();
        let token = path.trim_start_matches("/r/").to_string();
        MadeRequest { id, path, token }
    }

    /// A new browser opens `link` and sends the form with `fields` (CSRF token from the page).
    pub async fn open_link(
        &self,
        link: &str,
        fields: &[(&str, &str)],
    ) -> (reqwest::Client, reqwest::Response) {
        let (client, _) = self.new_browser();
        let token = self.csrf_token_with(&client, link).await;
        let res = self.post_with_token(&client, link, fields, &token).await;
        (client, res)
    }

    /// A sender who opened `link`, gave `fields` and was let in.
    pub async fn sender(&self, link: &str, fields: &[(&str, &str)]) -> Sender {
        let (client, res) = self.open_link(link, fields).await;
        let status = res.status();
        assert_eq!(status, 303, "{}", res.text().await.unwrap());
        assert_eq!(location(&res), "/send");
        // The session was renewed with a fresh token: read it from the upload page.
        let csrf = self.csrf_token_with(&client, "/send").await;
        Sender { client, csrf }
    }
}
