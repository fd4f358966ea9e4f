//! The OpenID Provider, as a relying party sees it: discovery, the authorization URL (code
//! flow with PKCE S256, `state` and `nonce`), the code exchange, and the ID token's checks
//! (signature against the provider's published keys, `iss`, `aud`, `exp`, `iat`, `nonce`).
//!
//! The `openidconnect` crate does the protocol; this module adds what a server needs around
//! it: discovery is cached and retried when the provider was down, the key set is fetched
//! again when a token names a key it does not hold (at most once a minute, so a forged
//! `kid` cannot make every sign-in a fetch), and every HTTP exchange has a deadline, a size
//! cap and no redirects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenFields, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::OidcSettings;
use crate::infra::http_client::{HttpClient, Limits, describe};

/// Every exchange with the provider ends within this.
const HTTP_DEADLINE: Duration = Duration::from_secs(10);
/// Discovery documents, key sets and token answers are small.
const MAX_BODY: usize = 512 * 1024;
/// Discovery is read again after this, so rotated keys and moved endpoints are picked up.
const REDISCOVER_AFTER: Duration = Duration::from_secs(3600);
/// A token naming an unknown key refreshes the key set at most this often.
const KEY_REFRESH_EVERY: Duration = Duration::from_secs(60);

/// Every claim of the ID token beyond the standard ones, so the configured groups or roles
/// claim can be any name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OtherClaims(HashMap<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

type TokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<TokenFields, CoreTokenType>;
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in through the provider did not give an identity.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider did not answer, or answered with a server error or garbage.
    #[error("the sign-in provider is not available: {0}")]
    Unavailable(String),
    /// The provider refused the code (used, expired, or not ours).
    #[error("the sign-in provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token failed a check; the reason names which.
    #[error("the ID token was refused: {0}")]
    InvalidToken(String),
}

/// What the browser must carry from the start of a sign-in to its end (kept in medport's
/// own session, never in the URL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The provider's answer, checked.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The values of the configured groups or roles claim.
    pub values: Vec<String>,
    pub amr: Vec<String>,
    pub acr: Option<String>,
}

struct Discovered {
    client: Client,
    end_session: Option<EndSessionUrl>,
    at: Instant,
}

/// One provider, shared by every worker.
pub struct Provider {
    settings: OidcSettings,
    /// medport's public URL without a trailing slash; the callback and the page after
    /// sign-out are paths under it.
    base: String,
    redirect: RedirectUrl,
    http: HttpClient,
    discovered: Mutex<Option<Arc<Discovered>>>,
    keys_refreshed: Mutex<Option<Instant>>,
}

impl Provider {
    /// `public_url` is medport's own; the provider sends browsers back to its callback path.
    pub fn new(settings: OidcSettings, public_url: &str) -> Result<Self, OidcError> {
        let base = public_url.trim_end_matches('/').to_string();
        let redirect = RedirectUrl::new(format!("{base}{}", crate::config::CALLBACK_PATH))
            .map_err(|e| OidcError::Unavailable(format!("redirect URL: {e}")))?;
        Ok(Self {
            settings,
            base,
            redirect,
            http: HttpClient::new(
                Limits {
                    deadline: HTTP_DEADLINE,
                    max_body: MAX_BODY,
                },
                None,
            )
            .map_err(|e| OidcError::Unavailable(e.to_string()))?,
            discovered: Mutex::new(None),
            keys_refreshed: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The discovery document and keys, read now unless a recent copy is held.
    async fn discovered(&self, fresh: bool) -> Result<Arc<Discovered>, OidcError> {
        let mut held = self.discovered.lock().await;
        if !fresh
            && let Some(d) = held.as_ref()
            && d.at.elapsed() < REDISCOVER_AFTER
        {
            return Ok(d.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.as_str().trim_end_matches('/').into())
            .map_err(|e| OidcError::Unavailable(format!("issuer URL: {e}")))?;
        let http = &self.http;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &|r| http.send(r))
            .await
            .map_err(|e| OidcError::Unavailable(describe(&e)))?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client = Client::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(
                self.settings.client_secret.expose_secret().to_string(),
            )),
        )
        .set_redirect_uri(self.redirect.clone());
        let d = Arc::new(Discovered {
            client,
            end_session,
            at: Instant::now(),
        });
        *held = Some(d.clone());
        Ok(d)
    }

    /// Where to send the browser, and what it must bring back.
    pub async fn start(&self) -> Result<(url::Url, Pending), OidcError> {
        let d = self.discovered(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = d.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url,
            Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges the code and checks the ID token against `pending`.
    pub async fn finish(&self, code: String, pending: Pending) -> Result<Identity, OidcError> {
        let d = self.discovered(false).await?;
        let http = &self.http;
        let tokens = d
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Unavailable(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&|r| http.send(r))
            .await
            .map_err(|e| match e {
                // RFC 6749's codes for a provider in trouble, not a refusal of this code.
                RequestTokenError::ServerResponse(r)
                    if matches!(
                        r.error().as_ref(),
                        "server_error" | "temporarily_unavailable"
                    ) =>
                {
                    OidcError::Unavailable(r.error().as_ref().to_string())
                }
                RequestTokenError::ServerResponse(r) => {
                    OidcError::Refused(r.error().as_ref().to_string())
                }
                other => OidcError::Unavailable(describe(&other)),
            })?;
        let token = tokens
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("the answer has no ID token".into()))?;
        let nonce = Nonce::new(pending.nonce);
        match self.verify(&d.client, token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if self.may_refresh_keys().await => {
                // The provider may have rotated its keys since discovery.
                let d = self.discovered(true).await?;
                self.verify(&d.client, token, &nonce)
            }
            other => other,
        }
        .map_err(|e| OidcError::InvalidToken(e.to_string()))
    }

    fn verify(
        &self,
        client: &Client,
        token: &openidconnect::IdToken<
            OtherClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
        nonce: &Nonce,
    ) -> Result<Identity, ClaimsVerificationError> {
        let skew = chrono::Duration::from_std(self.settings.clock_skew)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let verifier = client
            .id_token_verifier()
            // Lenient by the allowed skew on expiry, strict on tokens from the future.
            .set_time_fn(move || chrono::Utc::now() - skew)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > chrono::Utc::now() + skew {
                    Err("issued in the future".into())
                } else {
                    Ok(())
                }
            });
        let claims = token.claims(&verifier, nonce)?;
        let other = &claims.additional_claims().0;
        let values = match other.get(&self.settings.roles_claim) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Identity {
            issuer: claims.issuer().as_str().to_string(),
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            values,
            amr: claims
                .auth_method_refs()
                .map(|v| v.iter().map(|a| a.as_str().to_string()).collect())
                .unwrap_or_default(),
            acr: claims.auth_context_ref().map(|a| a.as_str().to_string()),
        })
    }

    async fn may_refresh_keys(&self) -> bool {
        let mut last = self.keys_refreshed.lock().await;
        if last.is_some_and(|at| at.elapsed() < KEY_REFRESH_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Where to send a browser that signs out, when the provider offers RP-initiated
    /// logout; `None` when it does not or cannot be reached (medport's session ends anyway).
    /// The provider sends the browser back to `after_path` under the public URL.
    pub async fn logout_url(&self, after_path: &str) -> Option<url::Url> {
        let d = self.discovered(false).await.ok()?;
        let endpoint = d.end_session.clone()?;
        let after = PostLogoutRedirectUrl::new(format!("{}{after_path}", self.base)).ok()?;
        Some(
            LogoutRequest::from(endpoint)
                .set_client_id(ClientId::new(self.settings.client_id.clone()))
                .set_post_logout_redirect_uri(after)
                .http_get_url(),
        )
    }

    /// For `medport check`: discovery answers and names the issuer configured.
    pub async fn probe(&self) -> Result<String, OidcError> {
        let d = self.discovered(true).await?;
        Ok(format!(
            "{} answers (token endpoint {}, sign-out {})",
            self.settings.issuer,
            d.client.token_uri().map_or("missing", |_| "present"),
            if d.end_session.is_some() {
                "offered"
            } else {
                "not offered"
            }
        ))
    }
}
