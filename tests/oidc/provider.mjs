// A real OpenID Provider (oidc-provider) for medport's OIDC login tests.
//
//   OIDC_PORT=9400 node tests/oidc/provider.mjs
//
// Issuer http://127.0.0.1:$OIDC_PORT, bound to 127.0.0.1 only. Everything lives in memory
// and is lost on restart: signing key, cookie key, registered clients, accounts, faults.
// Tests register their own client (open dynamic registration, POST /reg) and define their
// own accounts, so parallel tests never share state. Test-only endpoints:
//
//   POST /__test/accounts  {"id","email","email_verified","name","groups","amr","acr"} -> 204
//   POST /__test/fault     {"client_id","mode","times"} -> 204 (mode "none" clears)
//   GET  /__test/health    -> 200 "medport-test-oidc"
//
// Interactions: GET /interaction/:uid shows a tiny login form (field "login" = account id);
// POST /interaction/:uid/login signs in and grants every requested scope in one step.
import { randomBytes, randomUUID } from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const PORT = Number.parseInt(process.env.OIDC_PORT || '9400', 10);
if (!Number.isInteger(PORT) || PORT < 1 || PORT > 65535) {
  console.error(`oidc-provider: invalid OIDC_PORT '${process.env.OIDC_PORT}'`);
  process.exit(2);
}
const ISSUER = `http://${HOST}:${PORT}`;
// The service script passes a digest of this code, so that it replaces a provider left
// running from older code instead of reusing it.
const HEALTH = `medport-test-oidc ${process.env.OIDC_CODE_VERSION ?? ''}`.trim();

// ---------------------------------------------------------------- keys

const SIGNING_ALG = 'RS256';
const { privateKey: signingKey } = await jose.generateKeyPair(SIGNING_ALG, { extractable: true });
const signingJwk = {
  ...(await jose.exportJWK(signingKey)),
  kid: `medport-test-${randomBytes(6).toString('hex')}`,
  alg: SIGNING_ALG,
  use: 'sig',
};

// ---------------------------------------------------------------- storage

// A small in-memory adapter (the package's own one warns on every start and is an LRU of
// 1000 entries, which a long test run with one client per test could outgrow). Entries
// without an expiry (clients) are dropped after a day; expired entries are swept.
const DAY = 24 * 60 * 60;
const store = new Map(); // key -> { payload, expiresAt (ms) }
const sessionByUid = new Map(); // session uid -> key
const byUserCode = new Map(); // user code -> key
const grantMembers = new Map(); // grant id -> Set of keys
const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

function liveEntry(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry;
}

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const seconds = typeof expiresIn === 'number' ? expiresIn + 15 : DAY;
    store.set(key, { payload, expiresAt: Date.now() + seconds * 1000 });
    if (this.model === 'Session' && payload.uid) sessionByUid.set(payload.uid, key);
    if (payload.userCode) byUserCode.set(payload.userCode, key);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    return liveEntry(this.key(id))?.payload;
  }

  async findByUid(uid) {
    const key = sessionByUid.get(uid);
    return key ? liveEntry(key)?.payload : undefined;
  }

  async findByUserCode(userCode) {
    const key = byUserCode.get(userCode);
    return key ? liveEntry(key)?.payload : undefined;
  }

  async consume(id) {
    const entry = liveEntry(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) if (entry.expiresAt <= now) store.delete(key);
  for (const index of [sessionByUid, byUserCode]) {
    for (const [k, key] of index) if (!store.has(key)) index.delete(k);
  }
  for (const [grantId, keys] of grantMembers) {
    for (const key of keys) if (!store.has(key)) keys.delete(key);
    if (!keys.size) grantMembers.delete(grantId);
  }
}, 60_000).unref();

// ---------------------------------------------------------------- accounts

const accounts = new Map(); // id -> { id, email, email_verified, name, groups, amr, acr }

async function findAccount(_ctx, id) {
  const account = accounts.get(id);
  if (!account) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: account.email,
        email_verified: account.email_verified,
        name: account.name,
        groups: account.groups,
      };
    },
  };
}

// ---------------------------------------------------------------- pages

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// Tiny pages without scripts or external resources: a headless browser test clicks them.
function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body></html>
`;
}

// The buttons go inside the provider's form (hidden xsrf input), so a plain submit works.
async function logoutSource(ctx, form) {
  const buttons = `
<button type="submit" name="logout" value="yes" id="logout-yes">Yes, sign me out</button>
<button type="submit" id="logout-no">No, stay signed in</button>
`;
  ctx.body = page('Sign out', `<h1>Sign out of the test provider?</h1>
${form.replace('</form>', `${buttons}</form>`)}`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<h1 id="signed-out">Signed out</h1>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Error', `<h1 id="error">${escapeHtml(out.error)}</h1>
<p id="error-description">${escapeHtml(out.error_description ?? '')}</p>`);
}

// ---------------------------------------------------------------- provider

const provider = new Provider(ISSUER, {
  adapter: TestAdapter,
  findAccount,
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // amr and acr are listed under openid so that they reach the ID token whenever the
  // login set them (by default acr appears only when the client sends acr_values).
  claims: {
    openid: ['sub', 'acr', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  acrValues: ['urn:medport:test:mfa', 'urn:medport:test:pwd'],
  // The requested scopes' claims go into the ID token itself, not only to userinfo.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => true },
  clientBasedCORS: () => false,
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    resourceIndicators: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
  },
  renderError,
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: DAY,
    Grant: DAY,
    RefreshToken: DAY,
  },
});

provider.on('server_error', (ctx, err) => {
  console.error(`oidc-provider: server_error on ${ctx.method} ${ctx.path}:`, err);
});

// ---------------------------------------------------------------- test helpers

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readBody(ctx, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, 'request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(ctx) {
  let value;
  try {
    value = JSON.parse(await readBody(ctx));
  } catch {
    throw new HttpError(400, 'body must be JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, 'body must be a JSON object');
  }
  return value;
}

const isString = (v) => typeof v === 'string';
const isStringArray = (v) => Array.isArray(v) && v.every(isString);

function parseAccount(body) {
  if (!isString(body.id) || !body.id) throw new HttpError(400, 'id must be a non-empty string');
  const checks = {
    email: isString,
    email_verified: (v) => typeof v === 'boolean',
    name: isString,
    groups: isStringArray,
    amr: isStringArray,
    acr: isString,
  };
  const account = { id: body.id };
  for (const [field, valid] of Object.entries(checks)) {
    if (body[field] === undefined || body[field] === null) continue;
    if (!valid(body[field])) throw new HttpError(400, `invalid ${field}`);
    account[field] = body[field];
  }
  return account;
}

// ---------------------------------------------------------------- faults

// client_id -> { mode, remaining }. Each fault rewrites that client's next successful
// token responses only, so tests running in parallel do not see each other's faults.
const faults = new Map();
const FAULT_MODES = new Set([
  'tamper-signature', 'tamper-payload', 'wrong-audience', 'expired', 'no-nonce',
  'wrong-nonce', 'wrong-issuer', 'unknown-kid', 'alg-none', 'token-500', 'rotated-key',
]);
// Keys brought in by `rotated-key`: served at /jwks from the moment a token is signed with
// one, as a provider rotating its keys does, so a client must fetch the key set again.
const rotatedIn = [];

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function resign(header, payload, key) {
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

async function applyFault(mode, idToken) {
  const [headerB64, payloadB64, signature] = idToken.split('.');
  const header = jose.decodeProtectedHeader(idToken);
  const payload = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'tamper-signature': {
      // A character in the middle carries six full bits (the last one partly padding),
      // so the decoded signature really changes.
      const i = Math.floor(signature.length / 2);
      const c = signature[i] === 'A' ? 'B' : 'A';
      return `${headerB64}.${payloadB64}.${signature.slice(0, i)}${c}${signature.slice(i + 1)}`;
    }
    case 'tamper-payload': {
      const changed = { ...payload, sub: `${payload.sub}-tampered` };
      if (payload.email !== undefined) changed.email = 'mallory@example.org';
      return `${headerB64}.${b64json(changed)}.${signature}`;
    }
    case 'wrong-audience':
      return resign(header, { ...payload, aud: 'someone-else' }, signingKey);
    case 'expired':
      return resign(header, { ...payload, iat: now - 2 * 3600, exp: now - 3600 }, signingKey);
    case 'no-nonce': {
      const { nonce: _nonce, ...rest } = payload;
      return resign(header, rest, signingKey);
    }
    case 'wrong-nonce':
      return resign(header, { ...payload, nonce: randomBytes(16).toString('base64url') }, signingKey);
    case 'wrong-issuer':
      return resign(header, { ...payload, iss: 'http://127.0.0.1:1/other' }, signingKey);
    case 'unknown-kid': {
      const { privateKey } = await jose.generateKeyPair(SIGNING_ALG);
      return resign({ ...header, kid: `unknown-${randomUUID()}` }, payload, privateKey);
    }
    case 'rotated-key': {
      const { privateKey, publicKey } = await jose.generateKeyPair(SIGNING_ALG, { extractable: true });
      const kid = `rotated-${randomUUID()}`;
      rotatedIn.push({ ...(await jose.exportJWK(publicKey)), kid, alg: SIGNING_ALG, use: 'sig' });
      return resign({ ...header, kid }, payload, privateKey);
    }
    case 'alg-none': {
      const { kid: _kid, ...rest } = header;
      return `${b64json({ ...rest, alg: 'none' })}.${payloadB64}.`;
    }
    default:
      throw new Error(`unhandled fault mode ${mode}`);
  }
}

function takeFault(clientId) {
  const fault = clientId && faults.get(clientId);
  if (!fault) return undefined;
  fault.remaining -= 1;
  if (fault.remaining <= 0) faults.delete(clientId);
  return fault.mode;
}

// ---------------------------------------------------------------- interactions

function finish(ctx, returnTo) {
  // 303: the browser (or curl -L) follows with a GET, whatever the method was.
  ctx.status = 303;
  ctx.redirect(returnTo);
}

// A grant with every OIDC scope (and claim) the authorization request asked for.
async function grantAll(details, accountId) {
  const { params, grantId, prompt } = details;
  let grant;
  if (grantId) grant = await provider.Grant.find(grantId);
  grant ??= new provider.Grant({ accountId, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  if (prompt.details?.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details?.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  return grant.save();
}

async function interactionPage(ctx, uid) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) throw new HttpError(400, 'interaction does not match the cookie');
  switch (details.prompt.name) {
    case 'login':
      ctx.type = 'html';
      ctx.body = page('Sign in', `<h1>Sign in to the test provider</h1>
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="login">Account</label> <input name="login" id="login" autofocus>
<button type="submit" id="submit">Sign in</button>
</form>`);
      return;
    case 'consent': {
      const grantId = await grantAll(details, details.session.accountId);
      finish(ctx, await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }));
      return;
    }
    default:
      throw new HttpError(400, `unsupported prompt ${details.prompt.name}`);
  }
}

async function interactionLogin(ctx, uid) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) throw new HttpError(400, 'interaction does not match the cookie');
  if (details.prompt.name !== 'login') throw new HttpError(400, `expected the login prompt, not ${details.prompt.name}`);
  const login = new URLSearchParams(await readBody(ctx)).get('login') ?? '';
  const account = accounts.get(login);
  if (!account) throw new HttpError(400, `unknown account '${login}'`);
  const result = { login: { accountId: account.id } };
  if (account.amr) result.login.amr = account.amr;
  if (account.acr) result.login.acr = account.acr;
  // Consent in the same step: one login POST leads straight back to the client.
  result.consent = { grantId: await grantAll(details, account.id) };
  finish(ctx, await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
}

// ---------------------------------------------------------------- middleware

// Before the provider's routes: the test endpoints and interactions are answered here;
// token responses pass back through here so that a pending fault can rewrite them.
provider.use(async (ctx, next) => {
  const { method, path } = ctx;
  try {
    if (path === '/__test/health' && method === 'GET') {
      ctx.type = 'text';
      ctx.body = HEALTH;
      return;
    }
    if (path === '/__test/accounts' && method === 'POST') {
      const account = parseAccount(await readJson(ctx));
      accounts.set(account.id, account);
      ctx.status = 204;
      return;
    }
    if (path === '/__test/fault' && method === 'POST') {
      const body = await readJson(ctx);
      if (!isString(body.client_id) || !body.client_id) throw new HttpError(400, 'client_id must be a non-empty string');
      if (body.mode === 'none') {
        faults.delete(body.client_id);
        ctx.status = 204;
        return;
      }
      if (!FAULT_MODES.has(body.mode)) throw new HttpError(400, `unknown mode '${body.mode}'; one of none, ${[...FAULT_MODES].join(', ')}`);
      const times = body.times ?? 1;
      if (!Number.isInteger(times) || times < 1) throw new HttpError(400, 'times must be a positive integer');
      if (!(await provider.Client.find(body.client_id))) throw new HttpError(404, `unknown client '${body.client_id}'`);
      faults.set(body.client_id, { mode: body.mode, remaining: times });
      ctx.status = 204;
      return;
    }
    const interaction = /^\/interaction\/([^/]+)(\/login)?$/.exec(path);
    if (interaction) {
      const [, uid, login] = interaction;
      if (!login && method === 'GET') return await interactionPage(ctx, uid);
      if (login && method === 'POST') return await interactionLogin(ctx, uid);
      throw new HttpError(405, 'method not allowed');
    }
  } catch (err) {
    // oidc-provider's errors (e.g. SessionNotFound without the interaction cookie) carry
    // a 4xx status too; anything else is ours to report.
    const status = err.status ?? err.statusCode ?? 500;
    if (status >= 500) console.error(`oidc-provider: ${method} ${path}:`, err);
    ctx.status = status;
    ctx.type = 'text';
    ctx.body = `${err.error_description ?? err.message}\n`;
    return;
  }

  await next();

  if (method === 'GET' && path === '/jwks' && ctx.status === 200 && rotatedIn.length > 0) {
    const served = typeof ctx.body === 'string' ? JSON.parse(ctx.body) : ctx.body;
    ctx.body = { ...served, keys: [...served.keys, ...rotatedIn] };
    return;
  }
  if (method !== 'POST' || path !== '/token' || ctx.status !== 200) return;
  const body = ctx.body;
  if (!body || typeof body !== 'object' || typeof body.id_token !== 'string') return;
  const mode = takeFault(ctx.oidc?.client?.clientId);
  if (!mode) return;
  if (mode === 'token-500') {
    ctx.status = 500;
    ctx.body = { error: 'server_error' };
    return;
  }
  ctx.body = { ...body, id_token: await applyFault(mode, body.id_token) };
});

// ---------------------------------------------------------------- listen

const server = provider.listen(PORT, HOST, () => {
  console.log(`oidc-provider ready at ${ISSUER}`);
});
server.on('error', (err) => {
  console.error(`oidc-provider: cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
}
