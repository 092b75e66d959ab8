// Drives the official TypeScript MCP SDK client against one MCP endpoint, exactly as a user's app
// would, runs one named scenario and prints ONE JSON object of observations on stdout. The Rust
// end-to-end tests (tests/tests/e2e_ts.rs) assert on that object; this file only observes, it
// never judges, so a gateway bug shows up as a wrong observation rather than a crash here.
//
// Usage: [MCPGATE_E2E_AUTHORIZATION="Bearer …"] [MCPGATE_E2E_HEADERS='{"name":"value"}']
//        node client.mjs <mcp-url> <scenario>
// Scenarios: initialize tools_list tools_call resources prompts progress sampling elicitation
//            roots ping terminate concurrent rate_limited; integrity_tools
//            integrity_list_changed integrity_concurrent_lists (against tests/py/pin_server.py)
// Exit status: 0 with the observations, 1 with {"error": ...} when the SDK threw.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, scenario] = process.argv.slice(2);
if (!url || !scenario) {
  process.stderr.write("usage: node client.mjs <mcp-url> <scenario>\n");
  process.exit(2);
}

// Every scenario's client declares the same capabilities, so server-everything registers its
// capability-conditional tools (sampling, elicitation, roots) for every session.
const TEST_ROOT = { uri: "file:///tmp/mcpgate-e2e-root", name: "mcpgate-e2e-root" };
const SAMPLED_MODEL = "mcpgate-e2e-model";
const ELICITED_NAME = "Ada Lovelace";

const started = performance.now();
const sinceStart = () => Math.round((performance.now() - started) * 10) / 10;

// Server→client traffic observed while a scenario runs.
const seen = {
  samplingRequests: [],
  elicitationRequests: [],
  rootsRequests: [],
  logMessages: [],
  inFlightRequests: 0,
};

function newClient() {
  const client = new Client(
    { name: "mcpgate-e2e-ts", version: "0.1.0" },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    const first = request.params.messages[0];
    seen.samplingRequests.push({
      atMs: sinceStart(),
      maxTokens: request.params.maxTokens,
      systemPrompt: request.params.systemPrompt,
      firstMessageText: first && first.content && first.content.text,
    });
    return {
      role: "assistant",
      model: SAMPLED_MODEL,
      stopReason: "endTurn",
      content: { type: "text", text: `sampled answer to: ${first && first.content && first.content.text}` },
    };
  });
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    seen.elicitationRequests.push({
      atMs: sinceStart(),
      message: request.params.message,
      requiredFields: (request.params.requestedSchema && request.params.requestedSchema.required) || [],
    });
    return { action: "accept", content: { name: ELICITED_NAME, check: true } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    seen.rootsRequests.push({ atMs: sinceStart(), clientRequestsInFlight: seen.inFlightRequests });
    return { roots: [TEST_ROOT] };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (notification) => {
    seen.logMessages.push({ atMs: sinceStart(), data: notification.params.data });
  });
  return client;
}

// MCPGATE_E2E_AUTHORIZATION (e.g. "Bearer <jwt>") is sent on every request, as an app holding a
// token would; unset, no Authorization header is sent.
const AUTHORIZATION = process.env.MCPGATE_E2E_AUTHORIZATION;
// MCPGATE_E2E_HEADERS: a JSON object of more headers for every request (an instrumented app's
// `traceparent`, an `X-Request-Id`).
// MCPGATE_E2E_TOOL_PREFIX: prepended to the server-everything tool names the scenarios call (a
// virtual API's `<upstream>__`); unset, the names as the server lists them.
const TOOL_PREFIX = process.env.MCPGATE_E2E_TOOL_PREFIX || "";
const EXTRA_HEADERS = process.env.MCPGATE_E2E_HEADERS ? JSON.parse(process.env.MCPGATE_E2E_HEADERS) : {};

async function connect() {
  const client = newClient();
  const headers = { ...EXTRA_HEADERS, ...(AUTHORIZATION ? { authorization: AUTHORIZATION } : {}) };
  const transport = new StreamableHTTPClientTransport(
    new URL(url),
    Object.keys(headers).length > 0 ? { requestInit: { headers } } : undefined,
  );
  await client.connect(transport);
  return { client, transport };
}

// Counts our own requests in flight, so a server→client request can be shown to have arrived
// while no POST stream of ours was open (that is: on the standalone GET stream).
async function tracked(promise) {
  seen.inFlightRequests += 1;
  try {
    return await promise;
  } finally {
    seen.inFlightRequests -= 1;
  }
}

async function waitFor(condition, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

const textOf = (result) =>
  (result.content || []).filter((c) => c.type === "text").map((c) => c.text).join("\n");

const scenarios = {
  async initialize() {
    const { client, transport } = await connect();
    const info = client.getServerVersion();
    const caps = client.getServerCapabilities() || {};
    const out = {
      serverName: info && info.name,
      serverVersion: info && info.version,
      protocolVersion: transport.protocolVersion,
      sessionIdPresent: typeof transport.sessionId === "string" && transport.sessionId.length > 0,
      capabilities: Object.keys(caps).sort(),
      instructionsLength: (client.getInstructions() || "").length,
    };
    await client.close();
    return out;
  },

  async tools_list() {
    const { client } = await connect();
    const names = [];
    let cursor;
    do {
      const page = await tracked(client.listTools(cursor ? { cursor } : {}));
      names.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    await client.close();
    return { toolNames: names.sort() };
  },

  async tools_call() {
    const { client } = await connect();
    const echo = await tracked(client.callTool({ name: "echo", arguments: { message: "hello through mcpgate" } }));
    const sum = await tracked(client.callTool({ name: "get-sum", arguments: { a: 19, b: 23 } }));
    await client.close();
    return {
      echoText: textOf(echo),
      echoIsError: echo.isError === true,
      sumText: textOf(sum),
    };
  },

  async resources() {
    const { client } = await connect();
    const list = await tracked(client.listResources());
    const templates = await tracked(client.listResourceTemplates());
    const firstUri = list.resources.length > 0 ? list.resources[0].uri : null;
    const readFirst = firstUri ? await tracked(client.readResource({ uri: firstUri })) : null;
    const templated = await tracked(client.readResource({ uri: "demo://resource/dynamic/text/7" }));
    await client.close();
    const contentSummary = (read) =>
      read.contents.map((c) => ({ uri: c.uri, mimeType: c.mimeType, textLength: (c.text || "").length, blobLength: (c.blob || "").length }));
    return {
      resourceCount: list.resources.length,
      resourceUris: list.resources.map((r) => r.uri),
      templateUris: templates.resourceTemplates.map((t) => t.uriTemplate).sort(),
      firstUri,
      readFirst: readFirst ? contentSummary(readFirst) : [],
      readTemplated: contentSummary(templated),
      templatedText: templated.contents.map((c) => c.text || "").join("\n"),
    };
  },

  async prompts() {
    const { client } = await connect();
    const list = await tracked(client.listPrompts());
    const simple = await tracked(client.getPrompt({ name: "simple-prompt" }));
    const withArgs = await tracked(client.getPrompt({ name: "args-prompt", arguments: { city: "Oslo", state: "Viken" } }));
    await client.close();
    const firstText = (p) => (p.messages[0] && p.messages[0].content && p.messages[0].content.text) || null;
    return {
      promptNames: list.prompts.map((p) => p.name).sort(),
      simpleText: firstText(simple),
      argsText: firstText(withArgs),
    };
  },

  async progress() {
    const { client } = await connect();
    const progress = [];
    const t0 = performance.now();
    const ms = () => Math.round((performance.now() - t0) * 10) / 10;
    const result = await tracked(
      client.callTool(
        { name: `${TOOL_PREFIX}trigger-long-running-operation`, arguments: { duration: 2, steps: 4 } },
        undefined,
        { onprogress: (p) => progress.push({ progress: p.progress, total: p.total, atMs: ms() }), timeout: 60000 },
      ),
    );
    const resultAtMs = ms();
    await client.close();
    return { progress, resultAtMs, resultText: textOf(result), stepIntervalMs: 500 };
  },

  async sampling() {
    const { client } = await connect();
    const result = await tracked(
      client.callTool({ name: `${TOOL_PREFIX}trigger-sampling-request`, arguments: { prompt: "what is a gateway?", maxTokens: 77 } }),
    );
    await client.close();
    return { samplingRequests: seen.samplingRequests, resultText: textOf(result), model: SAMPLED_MODEL };
  },

  async elicitation() {
    const { client } = await connect();
    const result = await tracked(client.callTool({ name: `${TOOL_PREFIX}trigger-elicitation-request`, arguments: {} }));
    await client.close();
    return { elicitationRequests: seen.elicitationRequests, resultText: textOf(result), elicitedName: ELICITED_NAME };
  },

  async roots() {
    const { client } = await connect();
    const connectedAtMs = sinceStart();
    // server-everything asks for roots by itself 350 ms after `notifications/initialized`, outside
    // any request of ours, so that request travels on the GET stream, if the stream is open by
    // then (a slow start loses it, by the server's own design). So the scenario also asks again
    // the deterministic way: `notifications/roots/list_changed` makes the server send a new
    // roots/list, again unrelated to any request, once the GET stream has long been open.
    const initialArrived = await waitFor(() => seen.rootsRequests.length > 0, 3000);
    const countBeforeListChanged = seen.rootsRequests.length;
    await client.sendRootsListChanged();
    const arrivedAfterListChanged = await waitFor(() => seen.rootsRequests.length > countBeforeListChanged, 10000);
    const logged = await waitFor(() => seen.logMessages.some((m) => String(m.data).startsWith("Roots updated")), 5000);
    const listed = await tracked(client.callTool({ name: `${TOOL_PREFIX}get-roots-list`, arguments: {} }));
    await client.close();
    return {
      connectedAtMs,
      initialRootsRequestArrived: initialArrived,
      countBeforeListChanged,
      rootsRequestAfterListChanged: arrivedAfterListChanged,
      rootsRequests: seen.rootsRequests,
      rootsUpdatedLogged: logged,
      logMessages: seen.logMessages.map((m) => String(m.data)),
      rootsToolText: textOf(listed),
      rootUri: TEST_ROOT.uri,
    };
  },

  async ping() {
    const { client } = await connect();
    const t0 = performance.now();
    const result = await tracked(client.ping());
    const rttMs = Math.round((performance.now() - t0) * 10) / 10;
    await client.close();
    return { pingResult: result, rttMs };
  },

  // Many sessions at once, each with its own traffic, so a gateway that mixes up pooled
  // upstream connections, streams or session ids across workers shows it as cross-talk.
  async concurrent() {
    const CLIENTS = 12;
    const runOne = async (index) => {
      const { client, transport } = await connect();
      const echoes = [];
      for (let round = 0; round < 3; round += 1) {
        const message = `client-${index}-round-${round}`;
        const result = await client.callTool({ name: "echo", arguments: { message } });
        echoes.push({ sent: message, got: textOf(result) });
      }
      const progress = [];
      const long = await client.callTool(
        { name: `${TOOL_PREFIX}trigger-long-running-operation`, arguments: { duration: 1, steps: 2 } },
        undefined,
        { onprogress: (p) => progress.push(p.progress), timeout: 60000 },
      );
      const sessionId = transport.sessionId;
      await client.close();
      return { index, sessionId, echoes, progress, longText: textOf(long) };
    };
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => runOne(i)));
    return { clients: CLIENTS, results };
  },

  async terminate() {
    const { client, transport } = await connect();
    const sessionId = transport.sessionId;
    const protocolVersion = transport.protocolVersion;
    const before = await tracked(client.ping());
    await transport.terminateSession();
    const sessionIdAfterTerminate = transport.sessionId ?? null;
    // The SDK forgets the id once terminated, so the follow-up is sent the way a stale or
    // malicious client would: by hand, with the old id.
    const followUp = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": sessionId,
        "mcp-protocol-version": protocolVersion,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 4242, method: "ping" }),
    });
    const followUpBody = await followUp.text();
    await client.close();
    return {
      sessionIdPresent: typeof sessionId === "string" && sessionId.length > 0,
      pingBeforeTerminate: before,
      sessionIdAfterTerminate,
      followUpStatus: followUp.status,
      followUpBody,
    };
  },

  // MCP ACL (issue 5): what a client behind an ACL can see and do. Lists every page of every
  // list, then tries a fixed set of calls; each outcome is "ok" or the JSON-RPC error's code.
  async acl_probe() {
    const { client } = await connect();
    const all = async (list, key, pick) => {
      const out = [];
      let cursor;
      do {
        const page = await list(cursor ? { cursor } : {});
        out.push(...page[key].map(pick));
        cursor = page.nextCursor;
      } while (cursor);
      return out.sort();
    };
    const outcome = async (promise) => {
      try {
        await promise;
        return "ok";
      } catch (error) {
        return { code: error && error.code, message: String((error && error.message) || error) };
      }
    };
    const out = {
      tools: await all((p) => client.listTools(p), "tools", (t) => t.name),
      resources: await all((p) => client.listResources(p), "resources", (r) => r.uri),
      templates: await all((p) => client.listResourceTemplates(p), "resourceTemplates", (t) => t.uriTemplate),
      prompts: await all((p) => client.listPrompts(p), "prompts", (p) => p.name),
      calls: {
        echo: await outcome(client.callTool({ name: "echo", arguments: { message: "acl" } })),
        "get-sum": await outcome(client.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } })),
      },
      reads: {
        "architecture.md": await outcome(client.readResource({ uri: "demo://resource/static/document/architecture.md" })),
        "features.md": await outcome(client.readResource({ uri: "demo://resource/static/document/features.md" })),
      },
      gets: {
        "simple-prompt": await outcome(client.getPrompt({ name: "simple-prompt" })),
        "args-prompt": await outcome(client.getPrompt({ name: "args-prompt", arguments: { city: "Paris" } })),
      },
      ping: await outcome(client.ping()),
    };
    await client.close();
    return out;
  },

  // Management console (issue 19): every listed tool, then a call to every tool — the listed
  // ones and MCPGATE_E2E_CALL_NAMES (comma-separated: the server's own list, so hidden tools are
  // tried too). Each outcome is "ok" or the JSON-RPC error's code and message.
  async acl_call_each() {
    const { client } = await connect();
    const tools = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      tools.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    const extra = (process.env.MCPGATE_E2E_CALL_NAMES || "").split(",").filter(Boolean);
    const calls = {};
    for (const name of [...new Set([...tools, ...extra])]) {
      try {
        const args = name === "echo" ? { message: "managed" } : {};
        // A raw tools/call: callTool refuses task-only tools itself, before anything is sent.
        const result = await client.request(
          { method: "tools/call", params: { name, arguments: args } },
          CallToolResultSchema,
          { timeout: 10000 },
        );
        calls[name] = result.isError ? { toolError: textOf(result) } : "ok";
      } catch (error) {
        calls[name] = { code: error && error.code, message: String((error && error.message) || error) };
      }
    }
    await client.close();
    return { tools: tools.sort(), calls };
  },

  // MCP ACL: a tool that makes the server ask the client for sampling, behind an ACL that
  // refuses sampling. Observes whether the request reached the client and how the call ended.
  async acl_sampling() {
    const { client } = await connect();
    let outcome;
    try {
      const result = await tracked(
        client.callTool({ name: `${TOOL_PREFIX}trigger-sampling-request`, arguments: { prompt: "acl?", maxTokens: 5 } }),
      );
      outcome = { isError: result.isError === true, text: textOf(result) };
    } catch (error) {
      outcome = { code: error && error.code, message: String((error && error.message) || error) };
    }
    await client.close();
    return { samplingRequests: seen.samplingRequests.length, outcome };
  },

  // MCP ACL: subscribes to two static documents, turns on server-everything's simulated updates
  // (one round at once, then every 5 s) and reports which URIs the client was told about, after
  // at least two rounds for the first URI (so a second URI sent in the same rounds had its chance).
  async acl_updates() {
    const { ResourceUpdatedNotificationSchema } = await import("@modelcontextprotocol/sdk/types.js");
    const client = newClient();
    const updates = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
      updates.push(n.params.uri);
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const first = "demo://resource/static/document/architecture.md";
    const second = "demo://resource/static/document/features.md";
    const subscribed = {
      [first]: await client.subscribeResource({ uri: first }).then(() => "ok", (e) => String(e && e.code)),
      [second]: await client.subscribeResource({ uri: second }).then(() => "ok", (e) => String(e && e.code)),
    };
    await client.callTool({ name: "toggle-subscriber-updates", arguments: {} });
    const rounds = await waitFor(() => updates.filter((u) => u === first).length >= 2, 15000);
    await client.close();
    return { subscribed, twoRounds: rounds, updatedUris: [...new Set(updates)].sort() };
  },

  // Rate limits: calls `echo` until the gateway throttles one (at most MCPGATE_E2E_CALLS, default
  // 6), reporting each call as "ok" or the JSON-RPC error the SDK surfaced (code, data), then
  // shows the session still works (ping) after the refusal.
  async rate_limited() {
    const { client } = await connect();
    const calls = [];
    const max = Number(process.env.MCPGATE_E2E_CALLS || 6);
    for (let i = 0; i < max; i++) {
      try {
        await client.callTool({ name: "echo", arguments: { message: `call ${i}` } });
        calls.push("ok");
      } catch (e) {
        calls.push({ code: e && e.code, message: e && e.message, data: (e && e.data) || null });
        break;
      }
    }
    const ping = await client.ping().then(() => "ok", (e) => String(e && e.code));
    await client.close();
    return { calls, ping };
  },

  // Tool integrity (tests/tests/integrity.rs, against tests/py/pin_server.py): what the client
  // sees of the tools and prompts, and what using them does. Errors are observations.
  async integrity_tools() {
    const { client } = await connect();
    const failure = (e) => ({ code: e && e.code !== undefined ? e.code : null, message: String((e && e.message) || e) });
    const out = { tools: null, listError: null, prompts: null, promptsError: null, calls: {}, prompt: null };
    try {
      const all = [];
      let cursor;
      do {
        const page = await client.listTools(cursor ? { cursor } : {});
        all.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor);
      out.tools = all.map((t) => ({
        name: t.name,
        description: t.description || null,
        inputProperties: Object.keys((t.inputSchema && t.inputSchema.properties) || {}).sort(),
      }));
    } catch (e) {
      out.listError = failure(e);
    }
    try {
      out.prompts = (await client.listPrompts()).prompts.map((p) => ({ name: p.name, description: p.description || null }));
    } catch (e) {
      out.promptsError = failure(e);
    }
    for (const [name, args] of [["echo", { text: "hi" }], ["get_forecast", { city: "Paris" }]]) {
      try {
        const r = await client.callTool({ name, arguments: args });
        out.calls[name] = { ok: !r.isError, text: textOf(r) };
      } catch (e) {
        out.calls[name] = failure(e);
      }
    }
    try {
      await client.getPrompt({ name: "briefing", arguments: { topic: "pins" } });
      out.prompt = { ok: true };
    } catch (e) {
      out.prompt = failure(e);
    }
    await client.close();
    return out;
  },

  // Lists the tools twice, calls pin-server's `mutate` (which switches its definitions and sends
  // notifications/tools/list_changed on the GET stream), waits for the notification, lists again.
  async integrity_list_changed() {
    const { ToolListChangedNotificationSchema } = await import("@modelcontextprotocol/sdk/types.js");
    const client = newClient();
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      changed += 1;
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const describe = async () => {
      try {
        return (await client.listTools()).tools.map((t) => ({ name: t.name, description: t.description || null }));
      } catch (e) {
        return { code: e && e.code !== undefined ? e.code : null, message: String((e && e.message) || e) };
      }
    };
    const before = await describe();
    const again = await describe();
    await client.callTool({ name: "mutate", arguments: { variant: process.env.MCPGATE_E2E_VARIANT || "b" } });
    const notified = await waitFor(() => changed > 0, 15000);
    const after = await describe();
    let callAfter;
    try {
      const r = await client.callTool({ name: "get_forecast", arguments: { city: "Paris" } });
      callAfter = { ok: !r.isError, text: textOf(r) };
    } catch (e) {
      callAfter = { code: e && e.code !== undefined ? e.code : null, message: String((e && e.message) || e) };
    }
    await client.close();
    return { before, again, notified, after, callAfter };
  },

  // A virtual API over several upstreams (tests/tests/virtual_server.rs): every page of every
  // list, then for each upstream named in MCPGATE_E2E_UPSTREAMS (comma-separated; tools are
  // `<name>__<tool>`) a call, a sum and a prompt; reads; an unknown prefix; ping; DELETE.
  async virtual() {
    const upstreams = (process.env.MCPGATE_E2E_UPSTREAMS || "").split(",").filter(Boolean);
    const { client, transport } = await connect();
    const all = async (list, field) => {
      const out = [];
      let cursor;
      do {
        const page = await tracked(list(cursor ? { cursor } : {}));
        out.push(...page[field]);
        cursor = page.nextCursor;
      } while (cursor);
      return out;
    };
    const tools = await all((p) => client.listTools(p), "tools");
    const prompts = await all((p) => client.listPrompts(p), "prompts");
    const resources = await all((p) => client.listResources(p), "resources");
    const templates = await all((p) => client.listResourceTemplates(p), "resourceTemplates");
    const calls = {};
    const sums = {};
    const promptTexts = {};
    for (const u of upstreams) {
      calls[u] = textOf(await tracked(client.callTool({ name: `${u}__echo`, arguments: { message: `hi ${u}` } })));
      sums[u] = textOf(await tracked(client.callTool({ name: `${u}__get-sum`, arguments: { a: 2, b: 40 } })));
      const prompt = await tracked(client.getPrompt({ name: `${u}__args-prompt`, arguments: { city: "Oslo" } }));
      promptTexts[u] = (prompt.messages[0] && prompt.messages[0].content && prompt.messages[0].content.text) || null;
    }
    const firstUri = resources.length > 0 ? resources[0].uri : null;
    const read = firstUri ? await tracked(client.readResource({ uri: firstUri })) : null;
    const templated = await tracked(client.readResource({ uri: "demo://resource/dynamic/text/7" }));
    const unknownTool = await client
      .callTool({ name: "nobody__echo", arguments: { message: "x" } })
      .then(() => null, (e) => String((e && e.message) || e));
    const ping = await tracked(client.ping());
    const info = client.getServerVersion();
    const out = {
      serverName: info && info.name,
      protocolVersion: transport.protocolVersion,
      sessionIdPresent: typeof transport.sessionId === "string" && transport.sessionId.length > 0,
      capabilities: Object.keys(client.getServerCapabilities() || {}).sort(),
      instructions: client.getInstructions() || "",
      toolNames: tools.map((t) => t.name).sort(),
      promptNames: prompts.map((p) => p.name).sort(),
      resourceUris: resources.map((r) => r.uri),
      templateNames: templates.map((t) => t.name).sort(),
      calls,
      sums,
      promptTexts,
      readFirst: read ? read.contents.map((c) => ({ uri: c.uri, textLength: (c.text || "").length })) : [],
      templatedText: templated.contents.map((c) => c.text || "").join("\n"),
      unknownTool,
      ping,
    };
    await transport.terminateSession();
    await client.close();
    return out;
  },

  // Many tools/list requests of one session at once (MCPGATE_E2E_CONCURRENT, default 8): each
  // answer must reach the request it answers (the SDK pairs them by id).
  async integrity_concurrent_lists() {
    const { client } = await connect();
    const n = Number(process.env.MCPGATE_E2E_CONCURRENT || 8);
    const results = await Promise.all(Array.from({ length: n }, () => client.listTools()));
    await client.close();
    return { answers: results.length, toolNames: results.map((r) => r.tools.map((t) => t.name).sort()) };
  },
};

async function main() {
  const run = scenarios[scenario];
  if (!run) {
    process.stdout.write(JSON.stringify({ scenario, error: `unknown scenario ${scenario}` }) + "\n");
    process.exit(2);
  }
  try {
    const observations = await run();
    process.stdout.write(JSON.stringify({ scenario, ...observations }) + "\n");
    process.exit(0);
  } catch (error) {
    process.stdout.write(
      JSON.stringify({ scenario, error: String((error && error.message) || error), stack: error && error.stack }) + "\n",
    );
    process.exit(1);
  }
}

main();
