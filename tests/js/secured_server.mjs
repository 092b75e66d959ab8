// A secured MCP server for Mode A (the upstream is the resource server), built from the
// official SDK's server-side auth helpers: `mcpAuthMetadataRouter` publishes its protected-
// resource metadata (authorization server = $ISSUER, an oidc-provider), `requireBearerAuth`
// answers 401 with a `resource_metadata` challenge and checks JWT access tokens against the AS's
// JWKS (jose). The audience it accepts is set by the test once the gateway's public URL is known
// (`POST /test/audience`), since tokens are minted for the resource the client was pointed at,
// or given as $AUDIENCE when it is known beforehand (docs/tutorial.md).
// Usage: PORT=n ISSUER=url [AUDIENCE=url] node secured_server.mjs
import express from 'express';
import { z } from 'zod';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import {
  mcpAuthMetadataRouter,
  getOAuthProtectedResourceMetadataUrl,
} from '@modelcontextprotocol/sdk/server/auth/router.js';

const port = Number(process.env.PORT);
const issuer = process.env.ISSUER;
const self = new URL(`http://127.0.0.1:${port}/mcp`);
const oauthMetadata = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const jwks = createRemoteJWKSet(new URL(oauthMetadata.jwks_uri));
let audience = process.env.AUDIENCE || self.href;
let seenSubjects = [];

const verifier = {
  async verifyAccessToken(token) {
    const { payload } = await jwtVerify(token, jwks, { issuer, audience });
    seenSubjects.push(payload.sub);
    return {
      token,
      clientId: payload.client_id,
      scopes: String(payload.scope || '').split(' ').filter(Boolean),
      expiresAt: payload.exp,
      extra: { sub: payload.sub },
    };
  },
};

const app = express();
app.use(express.json());
app.use(mcpAuthMetadataRouter({ oauthMetadata, resourceServerUrl: self, scopesSupported: ['mcp:read'] }));
app.post('/test/audience', (req, res) => {
  audience = req.body.audience;
  res.json({ audience });
});
app.get('/test/subjects', (req, res) => res.json(seenSubjects));
const auth = requireBearerAuth({
  verifier,
  requiredScopes: ['mcp:read'],
  resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(self),
});
app.all('/mcp', auth, async (req, res) => {
  // Stateless: a server and transport per request.
  const server = new McpServer({ name: 'secured-upstream', version: '0.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echoes its input', inputSchema: { message: z.string() } },
    async ({ message }) => ({ content: [{ type: 'text', text: `Echo: ${message}` }] }),
  );
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => { transport.close(); server.close(); });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
app.listen(port, '127.0.0.1', () => console.log(`secured upstream on ${self.href}`));
