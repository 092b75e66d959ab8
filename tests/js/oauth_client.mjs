// The official TypeScript SDK client with an OAuth client provider, completing the flow VS Code
// performs against an MCP server behind mcpgate: 401 → protected-resource metadata → AS metadata
// → dynamic client registration → authorization code + PKCE (the user agent's redirects followed
// here over HTTP, cookies kept) → token (with `resource`) → MCP calls with the bearer token.
// Usage: node oauth_client.mjs <mcp url>. Prints one JSON object of observations.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const url = new URL(process.argv[2]);
const redirectUrl = 'http://127.0.0.1:9/callback';
const state = { info: undefined, tokens: undefined, verifier: undefined, code: undefined, authUrl: undefined };

async function userAgent(start) {
  const jar = new Map();
  let at = new URL(start);
  for (let hop = 0; hop < 20; hop++) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(at, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1));
    }
    const location = r.headers.get('location');
    if (!location) throw new Error(`user agent stuck at ${at}: ${r.status} ${await r.text()}`);
    const next = new URL(location, at);
    if (next.href.startsWith(redirectUrl)) {
      const error = next.searchParams.get('error');
      if (error) throw new Error(`authorization refused: ${error} ${next.searchParams.get('error_description')}`);
      return next.searchParams.get('code');
    }
    at = next;
  }
  throw new Error('too many redirects');
}

const authProvider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: 'mcpgate e2e',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientInformation: () => state.info,
  saveClientInformation: (info) => { state.info = info; },
  tokens: () => state.tokens,
  saveTokens: (tokens) => { state.tokens = tokens; },
  redirectToAuthorization: async (authUrl) => { state.authUrl = authUrl; state.code = await userAgent(authUrl); },
  saveCodeVerifier: (v) => { state.verifier = v; },
  codeVerifier: () => state.verifier,
};

function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

try {
  let unauthorizedFirst = false;
  const first = new StreamableHTTPClientTransport(url, { authProvider });
  try {
    await new Client({ name: 'mcpgate-e2e-oauth', version: '0.0.0' }).connect(first);
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    unauthorizedFirst = true;
    await first.finishAuth(state.code);
  }
  const client = new Client({ name: 'mcpgate-e2e-oauth', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(url, { authProvider }));
  const tools = await client.listTools();
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'through the gate' } });
  await client.close();
  const token = claims(state.tokens.access_token);
  console.log(JSON.stringify({
    unauthorizedFirst,
    registeredClientId: state.info?.client_id ?? null,
    authorization: {
      resource: state.authUrl?.searchParams.get('resource'),
      codeChallengeMethod: state.authUrl?.searchParams.get('code_challenge_method'),
      scope: state.authUrl?.searchParams.get('scope'),
    },
    token: { aud: token.aud, sub: token.sub, scope: token.scope, iss: token.iss },
    tools: tools.tools.length,
    echo: echo.content,
  }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.stack || e) }));
  process.exitCode = 1;
}
