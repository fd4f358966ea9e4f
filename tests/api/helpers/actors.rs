//! Who is signed in: accounts created directly, sign-in (with the TOTP step for admins), and
//! actors such as `app.admin().await` that act through the browser they signed in with.

use std::ops::Deref;

use super::{TestApp, location};

pub struct SignedIn {
    pub id: String,
    pub email: String,
    pub password: String,
    pub totp: Option<medport::app::accounts::totp::TotpSecret>,
}

/// A user signed in in the app's main browser, who can act through it.
pub struct Actor<'a> {
    app: &'a TestApp,
    pub user: SignedIn,
}

impl Deref for Actor<'_> {
    type Target = SignedIn;

    fn deref(&self) -> &SignedIn {
        &self.user
    }
}

impl Actor<'_> {
    /// POST a form as this user, with their session's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.app.post_form(path, fields).await
    }
}

impl TestApp {
    /// A new administrator, signed in through the TOTP step.
    pub async fn admin(&self) -> Actor<'_> {
        self.actor("admin").await
    }

    /// A new uploader, signed in.
    pub async fn uploader(&self) -> Actor<'_> {
        self.actor("uploader").await
    }

    /// A new auditor, signed in.
    pub async fn auditor(&self) -> Actor<'_> {
        self.actor("auditor").await
    }

    async fn actor(&self, role: &str) -> Actor<'_> {
        let user = self.sign_in_as(role).await;
        Actor { app: self, user }
    }

    pub async fn login_with(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        let token = self.csrf_token_with(client, "/login").await;
        client
            .post(self.url("/login"))
            .header("Accept", "text/html")
            .form(&[
                ("email", email),
                ("password", password),
                ("csrf_token", &token),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.login_with(&self.client, email, password).await
    }

    /// Signs in and asserts it worked.
    pub async fn sign_in(&self, email: &str, password: &str) {
        let res = self.login(email, password).await;
        assert_eq!(res.status(), 303, "sign-in failed for {email}");
        assert_eq!(res.headers()["location"], "/");
    }

    /// Gives a user a TOTP secret the test knows (as enrolment would) and 10 recovery codes.
    pub fn enrol_totp(
        &self,
        user_id: &str,
        email: &str,
    ) -> (medport::app::accounts::totp::TotpSecret, Vec<String>) {
        use diesel::prelude::*;
        use medport::app::accounts::{recovery_codes, totp};
        use medport::infra::crypto::secrets::{self, SealContext};
        use medport::infra::db::schema::users;
        let secret = totp::TotpSecret::generate().unwrap();
        let sealed = secrets::seal(
            &self.master_keyring(),
            &SealContext {
                table: "users",
                row_id: user_id,
                field: "totp_secret",
            },
            secret.expose(),
        )
        .unwrap();
        let codes = recovery_codes::generate().unwrap();
        let stored = recovery_codes::StoredCodes::from_codes(&codes);
        let mut conn = self.db.conn().unwrap();
        diesel::update(users::table.filter(users::email.eq(email)))
            .set((
                users::totp_secret_sealed.eq(Some(sealed)),
                users::recovery_codes.eq(Some(stored.to_json())),
            ))
            .execute(&mut *conn)
            .unwrap();
        (secret, codes)
    }

    pub async fn submit_totp(&self, code: &str) -> reqwest::Response {
        let token = self.csrf_token_with(&self.client, "/login/totp").await;
        self.client
            .post(self.url("/login/totp"))
            .header("Accept", "text/html")
            .form(&[("code", code), ("csrf_token", &token)])
            .send()
            .await
            .unwrap()
    }

    /// Creates a user of `role` and signs in as them in the main browser; admins get TOTP
    /// enrolled and pass the second step (a fresh step each time: the clock moves 30 s).
    /// Returns (user id, email, password, TOTP secret for admins).
    pub async fn sign_in_as(&self, role: &str) -> SignedIn {
        let email = format!("{role}-{}@example.org", uuid::Uuid::now_v7().simple());
        let password = "a long enough test password";
        let id = self.create_user(&email, role, password);
        let secret = if role == "admin" {
            Some(self.enrol_totp(&id, &email).0)
        } else {
            None
        };
        self.sign_in_existing(&email, password, secret.as_ref())
            .await;
        SignedIn {
            id,
            email,
            password: password.to_string(),
            totp: secret,
        }
    }

    pub async fn sign_in_existing(
        &self,
        email: &str,
        password: &str,
        totp_secret: Option<&medport::app::accounts::totp::TotpSecret>,
    ) {
        use medport::app::accounts::totp;
        let res = self.login(email, password).await;
        assert_eq!(res.status(), 303, "sign-in failed for {email}");
        if let Some(secret) = totp_secret {
            assert_eq!(location(&res), "/login/totp");
            self.clock.advance(std::time::Duration::from_secs(30));
            let code = totp::code_for_step(secret, totp::step_at(self.clock.unix()));
            let res = self.submit_totp(&code).await;
            assert_eq!(res.status(), 303, "TOTP step failed for {email}");
        }
    }

    /// A second browser signed in as an administrator, through the TOTP step.
    pub async fn admin_browser(&self, admin: &SignedIn) -> reqwest::Client {
        use medport::app::accounts::totp;
        let (client, _) = self.new_browser();
        let res = self
            .login_with(&client, &admin.email, &admin.password)
            .await;
        assert_eq!(location(&res), "/login/totp");
        self.clock.advance(std::time::Duration::from_secs(30));
        let secret = admin.totp.as_ref().unwrap();
        let code = totp::code_for_step(secret, totp::step_at(self.clock.unix()));
        let token = self.csrf_token_with(&client, "/login/totp").await;
        let res = self
            .post_with_token(&client, "/login/totp", &[("code", &code)], &token)
            .await;
        assert_eq!(res.status(), 303, "TOTP step failed for {}", admin.email);
        client
    }
}

/// A second browser signed in as a user without TOTP.
pub async fn browser_signed_in(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let (client, _) = app.new_browser();
    let res = app.login_with(&client, email, password).await;
    assert_eq!(res.status(), 303, "sign-in failed for {email}");
    assert_eq!(location(&res), "/");
    client
}

/// The manual-entry key on the enrolment page, as a secret the test can compute codes with.
pub fn secret_from_page(html: &str) -> (String, medport::app::accounts::totp::TotpSecret) {
    let re = regex::Regex::new(r"<code>([A-Z2-7 ]{32,})</code>").unwrap();
    let grouped = re.captures(html).expect("manual key on the page")[1].to_string();
    let base32: String = grouped.split_whitespace().collect();
    let seed = data_encoding::BASE32_NOPAD
        .decode(base32.as_bytes())
        .unwrap();
    (
        base32,
        medport::app::accounts::totp::TotpSecret::from_bytes(&seed).unwrap(),
    )
}
