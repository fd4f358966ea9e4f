//! Single sign-on against the real OpenID Provider the test services start
//! (`tests/oidc/provider.mjs`, `MEDPORT_TEST_OIDC_ISSUER`): each app registers its own
//! client, tests define accounts and faults there, and a browser goes the whole code flow.

use std::collections::HashMap;

use super::{Backend, Options, TestApp, csrf_token_at, location};

/// The provider as one app's tests see it: its client, and the test controls.
pub struct Provider {
    pub issuer: String,
    pub client_id: String,
    http: reqwest::Client,
}

/// One account at the provider.
pub struct Account<'a> {
    pub id: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub groups: &'a [&'a str],
    pub amr: &'a [&'a str],
}

impl<'a> Account<'a> {
    /// A verified address, one factor.
    pub fn new(id: &'a str, email: &'a str, groups: &'a [&'a str]) -> Self {
        Self {
            id,
            email: Some(email),
            email_verified: true,
            groups,
            amr: &["pwd"],
        }
    }
}

pub fn issuer() -> String {
    std::env::var("MEDPORT_TEST_OIDC_ISSUER")
        .expect("MEDPORT_TEST_OIDC_ISSUER: run scripts/test-services.sh and source target/test-services.env")
}

impl Provider {
    pub async fn account(&self, account: &Account<'_>) {
        let res = self
            .http
            .post(format!("{}/__test/accounts", self.issuer))
            .json(&serde_json::json!({
                "id": account.id,
                "email": account.email,
                "email_verified": account.email_verified,
                "groups": account.groups,
                "amr": account.amr,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "define account {}", account.id);
    }

    /// The next token answer for this app's client is altered (see provider.mjs).
    pub async fn fault(&self, mode: &str) {
        let res = self
            .http
            .post(format!("{}/__test/fault", self.issuer))
            .json(&serde_json::json!({ "client_id": self.client_id, "mode": mode, "times": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "set fault {mode}");
    }
}

impl TestApp {
    /// An app with single sign-on through the test provider. Its port is chosen first: the
    /// provider only sends browsers back to the redirect URL registered for the client.
    /// `env` adds `MEDPORT_*` settings (read by the real configuration code).
    pub async fn spawn_with_sso(backend: Backend, env: &[(&str, &str)]) -> (Self, Provider) {
        Self::spawn_with_sso_at(backend, &issuer(), env).await
    }

    pub async fn spawn_with_sso_at(
        backend: Backend,
        issuer: &str,
        env: &[(&str, &str)],
    ) -> (Self, Provider) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let (client_id, secret) = match http
            .post(format!("{issuer}/reg"))
            .json(&serde_json::json!({
                "redirect_uris": [format!("{base}/auth/oidc/callback")],
                "post_logout_redirect_uris": [format!("{base}/login?signed_out=1")],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .send()
            .await
        {
            Ok(res) if res.status() == 201 => {
                let body: serde_json::Value = res.json().await.unwrap();
                (
                    body["client_id"].as_str().unwrap().to_string(),
                    body["client_secret"].as_str().unwrap().to_string(),
                )
            }
            // A provider that is down: the app is still configured, with a made-up client.
            _ => (
                "unregistered".to_string(),
                "unregistered-secret".to_string(),
            ),
        };
        let mut vars: HashMap<String, String> = [
            ("MEDPORT_PUBLIC_URL", base.as_str()),
            ("MEDPORT_OIDC_ISSUER", issuer),
            ("MEDPORT_OIDC_CLIENT_ID", &client_id),
            ("MEDPORT_OIDC_CLIENT_SECRET", &secret),
            ("MEDPORT_OIDC_SCOPES", "email profile groups"),
            ("MEDPORT_OIDC_ADMIN_VALUES", "medport-admins"),
            ("MEDPORT_OIDC_UPLOADER_VALUES", "clinicians"),
            ("MEDPORT_OIDC_AUDITOR_VALUES", "auditors"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let loaded = medport::config::Settings::load_from(None, &vars).unwrap();
        let bind = format!("127.0.0.1:{port}").parse().unwrap();
        let app = TestApp::spawn_with(
            backend,
            Options {
                tweak: Box::new(move |s| {
                    s.bind = bind;
                    s.public_url = loaded.public_url;
                    s.oidc = loaded.oidc;
                    s.password_sign_in = loaded.password_sign_in;
                }),
                ..Options::default()
            },
        )
        .await;
        let provider = Provider {
            issuer: issuer.to_string(),
            client_id,
            http,
        };
        (app, provider)
    }

    /// Presses "Sign in with ..." in `client`: the answer sends the browser to the provider.
    pub async fn start_sso(&self, client: &reqwest::Client) -> reqwest::Response {
        let token = csrf_token_at(client, &self.url("/login")).await;
        client
            .post(self.url("/auth/oidc/start"))
            .form(&[("csrf_token", token.as_str()), ("next", "/")])
            .send()
            .await
            .unwrap()
    }

    /// Goes to the provider, signs in there as `account`, and returns the URL the provider
    /// sends the browser back to (medport's callback with `code` and `state`).
    pub async fn sso_to_callback(&self, client: &reqwest::Client, account: &str) -> url::Url {
        let start = self.start_sso(client).await;
        assert_eq!(start.status(), 200, "start");
        let mut url = followed_link(&start.text().await.unwrap());
        // authorization endpoint -> interaction page, or straight back to medport when the
        // browser still has a session at the provider
        for _ in 0..5 {
            let res = client.get(&url).send().await.unwrap();
            if res.status() == 200 {
                break;
            }
            assert!(res.status().is_redirection(), "{url}: {}", res.status());
            url = absolute(&url, &location(&res));
            if url.starts_with(&self.address) {
                return url::Url::parse(&url).unwrap();
            }
        }
        let login = format!("{url}/login");
        let mut res = client
            .post(&login)
            .form(&[("login", account)])
            .send()
            .await
            .unwrap();
        let mut next = login;
        for _ in 0..8 {
            assert!(
                res.status().is_redirection(),
                "{next}: {} {}",
                res.status(),
                res.text().await.unwrap()
            );
            next = absolute(&next, &location(&res));
            if next.starts_with(&self.address) {
                return url::Url::parse(&next).unwrap();
            }
            res = client.get(&next).send().await.unwrap();
        }
        panic!("the provider never sent the browser back");
    }

    /// The callback page (GET) and its form posted back, as the page's script does.
    pub async fn finish_sso(
        &self,
        client: &reqwest::Client,
        callback: &url::Url,
    ) -> reqwest::Response {
        let page = client.get(callback.as_str()).send().await.unwrap();
        assert_eq!(page.status(), 200, "callback page");
        let html = page.text().await.unwrap();
        assert!(html.contains("data-autosubmit"), "{html}");
        let query: HashMap<String, String> = callback.query_pairs().into_owned().collect();
        client
            .post(self.url("/auth/oidc/callback"))
            .form(&[
                ("code", query["code"].as_str()),
                ("state", query["state"].as_str()),
            ])
            .send()
            .await
            .unwrap()
    }

    /// The whole sign-in in `client`; the final answer of medport.
    pub async fn sso_sign_in(&self, client: &reqwest::Client, account: &str) -> reqwest::Response {
        let callback = self.sso_to_callback(client, account).await;
        self.finish_sso(client, &callback).await
    }
}

fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// Where a page that leads to the provider goes (`a[data-follow]`, as app.js follows it).
pub fn followed_link(html: &str) -> String {
    let re = regex::Regex::new(r#"href="([^"]+)" data-follow"#).unwrap();
    let escaped = &re
        .captures(html)
        .unwrap_or_else(|| panic!("no link to follow: {html}"))[1];
    // The attribute is HTML-escaped (`&#38;` and the like), as a browser reads it.
    let entity = regex::Regex::new(r"&#(\d+);").unwrap();
    entity
        .replace_all(escaped, |c: &regex::Captures| {
            char::from_u32(c[1].parse().unwrap()).unwrap().to_string()
        })
        .replace("&amp;", "&")
}
