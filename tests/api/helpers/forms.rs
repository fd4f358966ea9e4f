//! Pages and forms as a browser uses them: the CSRF token a page shows, and POSTs with it.

use super::{TestApp, location};

impl TestApp {
    /// The CSRF token of the current session, read from a page the way a browser would.
    pub async fn csrf_token_with(&self, client: &reqwest::Client, path: &str) -> String {
        csrf_token_at(client, &self.url(path)).await
    }

    /// The session's CSRF token whether or not it is signed in (sign-in page, or the
    /// account page once signed in).
    /// Follows redirects (a signed-in user may be sent on to a password change or TOTP
    /// enrolment) until a page shows one.
    pub async fn session_csrf(&self, client: &reqwest::Client) -> String {
        let mut path = "/login".to_string();
        for _ in 0..4 {
            let res = client
                .get(self.url(&path))
                .header("Accept", "text/html")
                .send()
                .await
                .unwrap();
            if res.status() != 303 {
                return extract_csrf(&res.text().await.unwrap())
                    .unwrap_or_else(|| panic!("no csrf token on {path}"));
            }
            path = match location(&res).as_str() {
                "/" => "/account".to_string(),
                other => other.to_string(),
            };
        }
        panic!("no page with a csrf token after {path}");
    }

    /// POST a form as a browser would, with the session's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_form_with(&self.client, path, fields).await
    }

    /// POST a form from `client` with its session's CSRF token.
    pub async fn post_form_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.session_csrf(client).await;
        self.post_with_token(client, path, fields, &token).await
    }

    /// POST a form from the main browser with the token `page` shows (the admin pages).
    pub async fn post_form_from(
        &self,
        page: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.csrf_token_with(&self.client, page).await;
        self.post_with_token(&self.client, path, fields, &token)
            .await
    }

    /// POST a form from `client` with the CSRF token given (a stale or foreign one, too).
    pub async fn post_with_token(
        &self,
        client: &reqwest::Client,
        path: &str,
        fields: &[(&str, &str)],
        token: &str,
    ) -> reqwest::Response {
        let mut all = fields.to_vec();
        all.push(("csrf_token", token));
        client
            .post(self.url(path))
            .header("Accept", "text/html")
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// A page as a browser asks for it: its status and its HTML.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let res = self.get_html(path).await;
        (res.status().as_u16(), res.text().await.unwrap())
    }
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let re = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#).unwrap();
    re.captures(html).map(|c| c[1].to_string())
}

/// The CSRF token the page at `url` shows (any server, such as a `medport serve` child).
pub async fn csrf_token_at(client: &reqwest::Client, url: &str) -> String {
    let html = client
        .get(url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    extract_csrf(&html).unwrap_or_else(|| panic!("no csrf token on {url}: {html}"))
}
