// The test OpenID Provider (tests/oidc, started by scripts/test-services.sh oidc): a client
// registered for one medport, accounts defined per run, and the settings that point medport
// at it. The provider keeps everything in memory and is shared by every run, so each run
// registers its own client and uses account ids of its own.
import { required, uniqueSuffix } from "./services.mjs";

export function oidcIssuer() {
  return required("MEDPORT_TEST_OIDC_ISSUER").replace(/\/+$/, "");
}

async function post(path, body, expected) {
  const res = await fetch(`${oidcIssuer()}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== expected) {
    throw new Error(`test OpenID Provider: POST ${path} answered HTTP ${res.status}: ${text}`);
  }
  return text;
}

/**
 * Registers a client for the medport at `url` (its public URL, so its port must be fixed
 * before it starts): the callback and the page after sign-out are its only redirects.
 */
export async function registerClient(url) {
  const client = JSON.parse(
    await post(
      "/reg",
      {
        redirect_uris: [`${url}/auth/oidc/callback`],
        post_logout_redirect_uris: [`${url}/login?signed_out=1`],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
      201,
    ),
  );
  return { id: client.client_id, secret: client.client_secret };
}

/** An account at the provider; `prefix` plus a suffix of this run is its id and mailbox. */
export async function defineAccount(prefix, claims) {
  const id = `${prefix}-${uniqueSuffix()}`;
  const account = { id, email: `${id}@example.org`, email_verified: true, ...claims };
  await post("/__test/accounts", account, 204);
  return account;
}

/**
 * medport's single sign-on settings for `client`: groups name the roles
 * (medport-admins, clinicians, auditors), the button reads "Sign in with Hospital account".
 */
export function singleSignOnSettings(url, client) {
  return {
    MEDPORT_BIND: `127.0.0.1:${new URL(url).port}`,
    MEDPORT_PUBLIC_URL: url,
    MEDPORT_OIDC_ISSUER: oidcIssuer(),
    MEDPORT_OIDC_CLIENT_ID: client.id,
    MEDPORT_OIDC_CLIENT_SECRET: client.secret,
    MEDPORT_OIDC_SCOPES: "email profile groups",
    MEDPORT_OIDC_ROLES_CLAIM: "groups",
    MEDPORT_OIDC_ADMIN_VALUES: "medport-admins",
    MEDPORT_OIDC_UPLOADER_VALUES: "clinicians",
    MEDPORT_OIDC_AUDITOR_VALUES: "auditors",
    MEDPORT_OIDC_LABEL: "Hospital account",
  };
}
