// mcpgate's own fixture server for the official MCP conformance suite
// (`@modelcontextprotocol/conformance`, tests/tests/conformance.rs). The suite's server scenarios
// call tools, resources and prompts by name and judge what comes back; this server offers each of
// them, written from what the scenarios check and from the MCP specification, on the official
// TypeScript SDK (low-level `Server`, `StreamableHTTPServerTransport`, the SDK's Express helper).
//
// Usage: PORT=n node conformance_fixture.mjs
// Prints "conformance fixture listening on port <n>" once it accepts connections.
//
// Behaviour worth knowing when reading the suite's results:
// - Streamable HTTP at /mcp with sessions (one SDK `Server` + transport per session), an
//   in-memory event store (so POST streams start with a priming event carrying an id and a
//   `retry` field, and a client can resume with `Last-Event-ID`), unknown sessions get 404.
//   Whether a stream is resumable follows the session's negotiated protocol version (see
//   `useNegotiatedVersion`), not a single request's header.
// - `test_reconnection` closes its own POST stream mid-call and answers afterwards, so the
//   answer reaches the client only through a GET with `Last-Event-ID` (SEP-1699 polling).
// - DNS rebinding: the SDK's Express helper refuses a Host that is not localhost / 127.0.0.1 /
//   [::1]; an `Origin` that is present and not one of those is refused 403 as well.
// - Everything a tool sends the client about a call (logging, progress, sampling, elicitation)
//   goes on that call's own POST stream (`extra.sendNotification` / `extra.sendRequest`, which
//   carry the related request id), as the specification recommends, never on the GET stream.
import { randomUUID } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  isInitializeRequest,
  LATEST_PROTOCOL_VERSION,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('conformance fixture: set PORT to the port to listen on');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Media: a 1x1 PNG and a short WAV, built here rather than pasted in as opaque base64.

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
    }
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

/** One pixel of the colour (r, g, b), 8-bit RGB, as a PNG file. */
function onePixelPng(r, g, b) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(1, 0); // width
  header.writeUInt32BE(1, 4); // height
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour
  // compression, filter, interlace: 0
  const scanline = Buffer.from([0, r, g, b]); // filter byte "none", then the pixel
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(scanline)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** `millis` of a 440 Hz tone, 8 kHz mono 16-bit PCM, as a WAV file. */
function toneWav(millis) {
  const rate = 8000;
  const samples = Math.round((rate * millis) / 1000);
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i += 1) {
    data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
  }
  const head = Buffer.alloc(44);
  head.write('RIFF', 0, 'ascii');
  head.writeUInt32LE(36 + data.length, 4);
  head.write('WAVE', 8, 'ascii');
  head.write('fmt ', 12, 'ascii');
  head.writeUInt32LE(16, 16); // fmt chunk size
  head.writeUInt16LE(1, 20); // PCM
  head.writeUInt16LE(1, 22); // mono
  head.writeUInt32LE(rate, 24);
  head.writeUInt32LE(rate * 2, 28); // byte rate
  head.writeUInt16LE(2, 32); // block align
  head.writeUInt16LE(16, 34); // bits per sample
  head.write('data', 36, 'ascii');
  head.writeUInt32LE(data.length, 40);
  return Buffer.concat([head, data]);
}

const RED_PIXEL = onePixelPng(255, 0, 0).toString('base64');
const TONE = toneWav(50).toString('base64');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (value) => ({ type: 'text', text: value });

// ---------------------------------------------------------------------------------------------
// Resources.

const STATIC_RESOURCES = [
  {
    uri: 'test://static-text',
    name: 'static-text',
    description: 'A fixed text resource',
    mimeType: 'text/plain',
    read: () => ({ text: 'This is the content of the static text resource.' }),
  },
  {
    uri: 'test://static-binary',
    name: 'static-binary',
    description: 'A fixed binary resource (a 1x1 PNG)',
    mimeType: 'image/png',
    read: () => ({ blob: RED_PIXEL }),
  },
  {
    uri: 'test://watched-resource',
    name: 'watched-resource',
    description: 'A text resource clients may subscribe to',
    mimeType: 'text/plain',
    read: () => ({ text: 'The watched resource has not changed.' }),
  },
];

const DATA_TEMPLATE = {
  uriTemplate: 'test://template/{id}/data',
  name: 'template-data',
  description: 'Data for an id, read from a URI template',
  mimeType: 'application/json',
};
const DATA_TEMPLATE_MATCH = /^test:\/\/template\/([^/]+)\/data$/;

function readResource(uri) {
  const fixed = STATIC_RESOURCES.find((resource) => resource.uri === uri);
  if (fixed) {
    return { contents: [{ uri, mimeType: fixed.mimeType, ...fixed.read() }] };
  }
  const templated = DATA_TEMPLATE_MATCH.exec(uri);
  if (templated) {
    const id = decodeURIComponent(templated[1]);
    const body = { id, templateTest: true, data: `Data for ID: ${id}` };
    return { contents: [{ uri, mimeType: DATA_TEMPLATE.mimeType, text: JSON.stringify(body) }] };
  }
  // -32002: the specification's "Resource not found".
  throw new McpError(-32002, 'Resource not found', { uri });
}

// ---------------------------------------------------------------------------------------------
// Prompts.

const PROMPTS = [
  {
    name: 'test_simple_prompt',
    description: 'A prompt without arguments',
    arguments: [],
    messages: () => [{ role: 'user', content: text('This is a simple prompt for testing.') }],
  },
  {
    name: 'test_prompt_with_arguments',
    description: 'A prompt that puts its two arguments into its text',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true },
      { name: 'arg2', description: 'Second test argument', required: true },
    ],
    messages: (args) => [
      {
        role: 'user',
        content: text(`Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'`),
      },
    ],
  },
  {
    name: 'test_prompt_with_embedded_resource',
    description: 'A prompt embedding the resource it is given',
    arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }],
    messages: (args) => [
      {
        role: 'user',
        content: {
          type: 'resource',
          resource: {
            uri: args.resourceUri,
            mimeType: 'text/plain',
            text: 'Embedded resource content for testing.',
          },
        },
      },
      { role: 'user', content: text('Please process the embedded resource above.') },
    ],
  },
  {
    name: 'test_prompt_with_image',
    description: 'A prompt carrying an image',
    arguments: [],
    messages: () => [
      { role: 'user', content: { type: 'image', data: RED_PIXEL, mimeType: 'image/png' } },
      { role: 'user', content: text('Please analyze the image above.') },
    ],
  },
];

/** Completion candidates per prompt argument and template variable. */
const COMPLETIONS = {
  'ref/prompt:test_prompt_with_arguments:arg1': ['test', 'testing', 'tested', 'other'],
  'ref/prompt:test_prompt_with_arguments:arg2': ['value', 'values', 'valid'],
  [`ref/resource:${DATA_TEMPLATE.uriTemplate}:id`]: ['1', '12', '123', '2'],
};

// ---------------------------------------------------------------------------------------------
// Tools. Each has its definition (as listed) and what a call does.

const NO_ARGUMENTS = { type: 'object', properties: {} };

/** Sends a notification about the call being served, on that call's own stream. */
async function notifyAboutCall(extra, method, params) {
  await extra.sendNotification({ method, params });
}

async function logAboutCall(server, extra, level, data) {
  // The level the client chose with logging/setLevel (kept per session by the SDK's Server).
  if (server.isMessageIgnored(level, extra.sessionId)) return;
  await notifyAboutCall(extra, 'notifications/message', { level, logger: 'conformance-fixture', data });
}

function requireString(args, name) {
  const value = args?.[name];
  if (typeof value !== 'string' || value === '') {
    // An input validation error is a tool execution error (isError), not a protocol error.
    throw Object.assign(new Error(`argument "${name}" (a string) is required`), { toolError: true });
  }
  return value;
}

function requireClientCapability(server, capability) {
  if (!server.getClientCapabilities()?.[capability]) {
    throw Object.assign(new Error(`the client did not declare the ${capability} capability`), {
      toolError: true,
    });
  }
}

const TOOLS = [
  {
    name: 'test_simple_text',
    description: 'Returns one text item',
    inputSchema: NO_ARGUMENTS,
    call: async () => ({ content: [text('This is a simple text response for testing.')] }),
  },
  {
    name: 'test_image_content',
    description: 'Returns a 1x1 PNG image',
    inputSchema: NO_ARGUMENTS,
    call: async () => ({ content: [{ type: 'image', data: RED_PIXEL, mimeType: 'image/png' }] }),
  },
  {
    name: 'test_audio_content',
    description: 'Returns a short WAV tone',
    inputSchema: NO_ARGUMENTS,
    call: async () => ({ content: [{ type: 'audio', data: TONE, mimeType: 'audio/wav' }] }),
  },
  {
    name: 'test_embedded_resource',
    description: 'Returns an embedded text resource',
    inputSchema: NO_ARGUMENTS,
    call: async () => ({
      content: [
        {
          type: 'resource',
          resource: {
            uri: 'test://embedded-resource',
            mimeType: 'text/plain',
            text: 'This is an embedded resource content.',
          },
        },
      ],
    }),
  },
  {
    name: 'test_multiple_content_types',
    description: 'Returns text, an image and an embedded resource together',
    inputSchema: NO_ARGUMENTS,
    call: async () => ({
      content: [
        text('Multiple content types test:'),
        { type: 'image', data: RED_PIXEL, mimeType: 'image/png' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: JSON.stringify({ test: 'data', value: 123 }),
          },
        },
      ],
    }),
  },
  {
    name: 'test_tool_with_logging',
    description: 'Logs three info messages while it runs',
    inputSchema: NO_ARGUMENTS,
    call: async (_args, extra, server) => {
      await logAboutCall(server, extra, 'info', 'Tool execution started');
      await sleep(50);
      await logAboutCall(server, extra, 'info', 'Tool processing data');
      await sleep(50);
      await logAboutCall(server, extra, 'info', 'Tool execution completed');
      return { content: [text('Logged three messages.')] };
    },
  },
  {
    name: 'test_error_handling',
    description: 'Always fails (a tool execution error, isError)',
    inputSchema: NO_ARGUMENTS,
    call: async () => ({
      isError: true,
      content: [text('This tool intentionally returns an error for testing')],
    }),
  },
  {
    name: 'test_tool_with_progress',
    description: 'Reports progress 0, 50, 100 of 100 when asked for progress',
    inputSchema: NO_ARGUMENTS,
    call: async (_args, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (progress > 0) await sleep(50);
        if (progressToken !== undefined) {
          await notifyAboutCall(extra, 'notifications/progress', { progressToken, progress, total: 100 });
        }
      }
      return { content: [text('Done, in three steps.')] };
    },
  },
  {
    name: 'test_sampling',
    description: 'Asks the client to sample an LLM with the prompt it is given',
    inputSchema: {
      type: 'object',
      properties: { prompt: { type: 'string', description: 'The prompt to send to the LLM' } },
      required: ['prompt'],
    },
    call: async (args, extra, server) => {
      const prompt = requireString(args, 'prompt');
      requireClientCapability(server, 'sampling');
      const answer = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: text(prompt) }], maxTokens: 100 },
        },
        CreateMessageResultSchema,
      );
      const said = answer.content?.type === 'text' ? answer.content.text : JSON.stringify(answer.content);
      return { content: [text(`LLM response: ${said}`)] };
    },
  },
  {
    name: 'test_elicitation',
    description: 'Asks the user (through the client) for a username and an email',
    inputSchema: {
      type: 'object',
      properties: { message: { type: 'string', description: 'The message to show the user' } },
      required: ['message'],
    },
    call: async (args, extra, server) => {
      const message = requireString(args, 'message');
      requireClientCapability(server, 'elicitation');
      const answer = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            message,
            requestedSchema: {
              type: 'object',
              properties: {
                username: { type: 'string', description: "User's response" },
                email: { type: 'string', description: "User's email address" },
              },
              required: ['username', 'email'],
            },
          },
        },
        ElicitResultSchema,
      );
      return {
        content: [
          text(`User response: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`),
        ],
      };
    },
  },
  {
    name: 'test_elicitation_sep1034_defaults',
    description: 'Elicits a form whose primitive fields all have defaults (SEP-1034)',
    inputSchema: NO_ARGUMENTS,
    call: (args, extra, server) =>
      elicitForm(server, extra, 'Please review these values (each has a default).', {
        name: { type: 'string', description: 'Name', default: 'John Doe' },
        age: { type: 'integer', description: 'Age', default: 30 },
        score: { type: 'number', description: 'Score', default: 95.5 },
        status: {
          type: 'string',
          description: 'Status',
          enum: ['active', 'inactive', 'pending'],
          default: 'active',
        },
        verified: { type: 'boolean', description: 'Verified', default: true },
      }),
  },
  {
    name: 'test_elicitation_sep1330_enums',
    description: 'Elicits a form with each kind of enum field (SEP-1330)',
    inputSchema: NO_ARGUMENTS,
    call: (args, extra, server) =>
      elicitForm(server, extra, 'Please pick from these lists.', {
        untitledSingle: { type: 'string', enum: ['option1', 'option2', 'option3'] },
        titledSingle: {
          type: 'string',
          oneOf: [
            { const: 'value1', title: 'First Option' },
            { const: 'value2', title: 'Second Option' },
            { const: 'value3', title: 'Third Option' },
          ],
        },
        legacyEnum: {
          type: 'string',
          enum: ['opt1', 'opt2', 'opt3'],
          enumNames: ['Option One', 'Option Two', 'Option Three'],
        },
        untitledMulti: {
          type: 'array',
          items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
        },
        titledMulti: {
          type: 'array',
          items: {
            anyOf: [
              { const: 'value1', title: 'First Choice' },
              { const: 'value2', title: 'Second Choice' },
              { const: 'value3', title: 'Third Choice' },
            ],
          },
        },
      }),
  },
  {
    name: 'json_schema_2020_12_tool',
    description: 'Tool with JSON Schema 2020-12 features',
    // Listed exactly as written: the SDK's low-level Server does not rewrite input schemas.
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: {
        address: {
          type: 'object',
          properties: { street: { type: 'string' }, city: { type: 'string' } },
        },
      },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false,
    },
    call: async (args) => ({ content: [text(`Received: ${JSON.stringify(args ?? {})}`)] }),
  },
  {
    name: 'test_reconnection',
    description:
      'Closes its own SSE stream mid-call (when the transport lets it), then answers; the client ' +
      'resumes with Last-Event-ID to receive the answer (SEP-1699)',
    inputSchema: NO_ARGUMENTS,
    call: async (_args, extra) => {
      await sleep(100);
      // Defined by the SDK only when the stream is resumable (an event store, and a client on
      // 2025-11-25 or later that was sent a priming event id).
      const closed = typeof extra.closeSSEStream === 'function';
      if (closed) extra.closeSSEStream();
      await sleep(200);
      return {
        content: [
          text(closed ? 'Answered after the stream was closed mid-call.' : 'Answered on the open stream.'),
        ],
      };
    },
  },
];

async function elicitForm(server, extra, message, properties) {
  requireClientCapability(server, 'elicitation');
  const answer = await extra.sendRequest(
    { method: 'elicitation/create', params: { message, requestedSchema: { type: 'object', properties } } },
    ElicitResultSchema,
  );
  return {
    content: [
      text(`Elicitation completed: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// One MCP server per session.

function buildServer(subscriptions) {
  const server = new Server(
    { name: 'mcpgate-conformance-fixture', version: '1.0.0' },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
      instructions: 'A fixture for the MCP conformance suite; every name it serves is a test.',
    },
  );

  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: TOOLS.map(({ name, description, inputSchema }) => ({ name, description, inputSchema })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const tool = TOOLS.find((candidate) => candidate.name === request.params.name);
    if (!tool) {
      throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`);
    }
    try {
      return await tool.call(request.params.arguments ?? {}, extra, server);
    } catch (error) {
      if (error?.toolError) return { isError: true, content: [text(error.message)] };
      throw error;
    }
  });

  server.setRequestHandler(ListResourcesRequestSchema, async () => ({
    resources: STATIC_RESOURCES.map(({ uri, name, description, mimeType }) => ({
      uri,
      name,
      description,
      mimeType,
    })),
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [DATA_TEMPLATE],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (request) => readResource(request.params.uri));
  server.setRequestHandler(SubscribeRequestSchema, async (request) => {
    subscriptions.add(request.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
    subscriptions.delete(request.params.uri);
    return {};
  });

  server.setRequestHandler(ListPromptsRequestSchema, async () => ({
    prompts: PROMPTS.map(({ name, description, arguments: args }) => ({
      name,
      description,
      arguments: args,
    })),
  }));
  server.setRequestHandler(GetPromptRequestSchema, async (request) => {
    const prompt = PROMPTS.find((candidate) => candidate.name === request.params.name);
    if (!prompt) {
      throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${request.params.name}`);
    }
    const args = request.params.arguments ?? {};
    const missing = prompt.arguments.filter((arg) => arg.required && typeof args[arg.name] !== 'string');
    if (missing.length > 0) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `Missing required arguments: ${missing.map((arg) => arg.name).join(', ')}`,
      );
    }
    return { description: prompt.description, messages: prompt.messages(args) };
  });

  server.setRequestHandler(CompleteRequestSchema, async (request) => {
    const { ref, argument } = request.params;
    const target = ref.type === 'ref/prompt' ? ref.name : ref.uri;
    const candidates = COMPLETIONS[`${ref.type}:${target}:${argument.name}`] ?? [];
    const values = candidates.filter((value) => value.startsWith(argument.value ?? ''));
    return { completion: { values, total: values.length, hasMore: false } };
  });

  return server;
}

// ---------------------------------------------------------------------------------------------
// The event store (resumability): every message sent on a stream, kept in order, so a client
// that reconnects with Last-Event-ID gets what followed that event on the same stream.

class MemoryEventStore {
  constructor() {
    this.events = []; // { id, streamId, message }
    this.sequence = 0;
  }

  async storeEvent(streamId, message) {
    this.sequence += 1;
    const id = `${streamId}.${this.sequence}`;
    this.events.push({ id, streamId, message });
    return id;
  }

  async getStreamIdForEventId(eventId) {
    return this.events.find((event) => event.id === eventId)?.streamId;
  }

  async replayEventsAfter(lastEventId, { send }) {
    const index = this.events.findIndex((event) => event.id === lastEventId);
    if (index < 0) throw new Error(`unknown event id ${lastEventId}`);
    const { streamId } = this.events[index];
    for (const event of this.events.slice(index + 1)) {
      // Priming events (an empty message) only carry an id; there is nothing to replay.
      if (event.streamId === streamId && Object.keys(event.message).length > 0) {
        await send(event.id, event.message);
      }
    }
    return streamId;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP.

const sessions = new Map(); // session id -> { transport, server, protocolVersion }

/**
 * Streams are resumable according to the protocol version the session negotiated, not the one a
 * single request's `MCP-Protocol-Version` header names. The SDK decides per request (priming
 * event and `closeSSEStream` only from 2025-11-25 on, since an older client cannot parse an event
 * with empty data); the suite's server-sse-polling scenario opens a 2025-11-25 session with the
 * SDK client, then POSTs its own request naming 2025-03-26. A client that negotiated 2025-11-25
 * handles priming events, so the fixture hands the transport the negotiated version for requests
 * of such a session that name an older one.
 */
function useNegotiatedVersion(req, negotiated) {
  const named = req.headers['mcp-protocol-version'];
  if (named === undefined || negotiated < '2025-11-25' || named >= negotiated) return;
  req.headers['mcp-protocol-version'] = negotiated;
  // The SDK's Node adapter reads the raw header list.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === 'mcp-protocol-version') req.rawHeaders[i + 1] = negotiated;
  }
}

function jsonRpcError(res, status, code, message) {
  res.status(status).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

// The SDK's helper validates Host (DNS rebinding protection for a loopback server).
const app = createMcpExpressApp({ host: '127.0.0.1' });

// ... and Origin: a browser page on another origin is refused (the specification: 403).
app.use((req, res, next) => {
  const origin = req.headers.origin;
  if (origin === undefined) return next();
  let hostname;
  try {
    hostname = new URL(origin).hostname;
  } catch {
    return jsonRpcError(res, 403, -32000, `Invalid Origin: ${origin}`);
  }
  if (!LOOPBACK_NAMES.has(hostname)) return jsonRpcError(res, 403, -32000, `Origin not allowed: ${origin}`);
  return next();
});

app.post('/mcp', async (req, res) => {
  const sessionId = req.headers['mcp-session-id'];
  if (sessionId !== undefined) {
    const session = sessions.get(sessionId);
    if (!session) return jsonRpcError(res, 404, -32001, 'Session not found');
    useNegotiatedVersion(req, session.protocolVersion);
    return session.transport.handleRequest(req, res, req.body);
  }
  if (!isInitializeRequest(req.body)) {
    return jsonRpcError(res, 400, -32000, 'Bad Request: no Mcp-Session-Id and not an initialize request');
  }
  const requested = req.body.params?.protocolVersion;
  const protocolVersion = SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
  const subscriptions = new Set();
  const server = buildServer(subscriptions);
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    eventStore: new MemoryEventStore(),
    retryInterval: 500,
    onsessioninitialized: (id) => {
      sessions.set(id, { transport, server, protocolVersion });
    },
    onsessionclosed: (id) => {
      sessions.delete(id);
    },
  });
  transport.onclose = () => {
    if (transport.sessionId) sessions.delete(transport.sessionId);
  };
  await server.connect(transport);
  return transport.handleRequest(req, res, req.body);
});

async function withSession(req, res) {
  const sessionId = req.headers['mcp-session-id'];
  if (sessionId === undefined) return jsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id required');
  const session = sessions.get(sessionId);
  if (!session) return jsonRpcError(res, 404, -32001, 'Session not found');
  useNegotiatedVersion(req, session.protocolVersion);
  return session.transport.handleRequest(req, res);
}

app.get('/mcp', withSession);
app.delete('/mcp', withSession);

app.use((error, _req, res, _next) => {
  console.error('conformance fixture: request failed:', error);
  if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal error');
});

const listener = app.listen(port, '127.0.0.1', () => {
  console.log(`conformance fixture listening on port ${port}`);
});
listener.on('error', (error) => {
  console.error(`conformance fixture: cannot listen on 127.0.0.1:${port}: ${error.message}`);
  process.exit(1);
});
