// What an upstream built on the official TypeScript SDK makes of request bodies, for the
// gateway's differential test (tests/tests/acl_differential.rs). Reads a file of base64 bodies,
// one per line; prints one JSON object per body: the SDK's own body decoding
// (`readRequestBody`: TextDecoder, UTF-8), `JSON.parse`, `JSONRPCMessageSchema`, and for a
// `params.uri` what `McpServer` looks resources up by (`new URL(uri).toString()`).
import { readFileSync } from 'node:fs';
import { JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';
import { readRequestBody } from '@modelcontextprotocol/sdk/server/requestBody.js';

// A string with a lone surrogate cannot be printed as JSON that Rust reads back: marked instead.
const str = (v) => (typeof v !== 'string' ? null : v.isWellFormed() ? v : '(ill-formed UTF-16)');
const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.length > 0);
for (const line of lines) {
  let out;
  try {
    const bytes = Buffer.from(line, 'base64');
    const body = await readRequestBody(new Request('http://upstream/mcp', { method: 'POST', body: bytes }));
    const raw = JSON.parse(body.text);
    if (Array.isArray(raw)) {
      out = { ok: false, why: 'batch' };
    } else {
      const m = JSONRPCMessageSchema.parse(raw);
      const params = m.params ?? {};
      out = {
        ok: true,
        method: str(m.method),
        hasId: Object.hasOwn(m, 'id'),
        id: Object.hasOwn(m, 'id') ? (typeof m.id === 'string' ? str(m.id) : m.id) : null,
        name: str(params.name),
        uri: str(params.uri),
        refType: str(params.ref?.type),
        refName: str(params.ref?.name),
        refUri: str(params.ref?.uri),
      };
      if (out.uri !== null) {
        try {
          out.uriHref = new URL(out.uri).toString();
        } catch {
          out.uriHref = null;
        }
      }
    }
  } catch (e) {
    out = { ok: false, why: String(e?.message ?? e).slice(0, 120) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
