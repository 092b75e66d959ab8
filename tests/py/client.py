"""Drives the official MCP Python SDK client (PyPI `mcp`) against one MCP endpoint, exactly as a
user's app would, runs one named scenario and prints ONE JSON object of observations on stdout.

The Rust end-to-end tests (tests/tests/e2e_py.rs) assert on that object; this file only observes,
it never judges, so a gateway bug shows up as a wrong observation rather than a crash here.

Usage: python client.py <mcp-url> <scenario>
Scenarios: initialize tools_list tools_call resources prompts progress sampling elicitation
           roots ping terminate; integrity_tools integrity_list_changed (against pin_server.py)
Exit status: 0 with the observations, 1 with {"error": ...} when the SDK raised.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from pydantic import AnyUrl

# Every scenario's client declares the same capabilities (by passing these callbacks), so
# server-everything registers its capability-conditional tools for every session.
TEST_ROOT_URI = "file:///tmp/mcpgate-e2e-root"
TEST_ROOT_NAME = "mcpgate-e2e-root"
SAMPLED_MODEL = "mcpgate-e2e-model"
ELICITED_NAME = "Ada Lovelace"
# Prepended to the server-everything tool names the scenarios call (a virtual API's `<upstream>__`).
TOOL_PREFIX = os.environ.get("MCPGATE_E2E_TOOL_PREFIX", "")

STARTED = time.monotonic()


def since_start_ms() -> float:
    return round((time.monotonic() - STARTED) * 1000, 1)


class Observed:
    """Server-to-client traffic seen while a scenario runs."""

    def __init__(self) -> None:
        self.sampling_requests: list[dict[str, Any]] = []
        self.elicitation_requests: list[dict[str, Any]] = []
        self.roots_requests: list[dict[str, Any]] = []
        self.log_messages: list[dict[str, Any]] = []
        # Our own requests in flight: a server request that arrives while this is 0 travelled on
        # the standalone GET stream, since no POST stream of ours was open.
        self.in_flight = 0

    async def tracked(self, awaitable: Awaitable[Any]) -> Any:
        self.in_flight += 1
        try:
            return await awaitable
        finally:
            self.in_flight -= 1


SEEN = Observed()


async def on_sampling(_context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    first = params.messages[0].content if params.messages else None
    first_text = getattr(first, "text", None)
    SEEN.sampling_requests.append(
        {
            "atMs": since_start_ms(),
            "maxTokens": params.maxTokens,
            "systemPrompt": params.systemPrompt,
            "firstMessageText": first_text,
        }
    )
    return types.CreateMessageResult(
        role="assistant",
        model=SAMPLED_MODEL,
        stopReason="endTurn",
        content=types.TextContent(type="text", text=f"sampled answer to: {first_text}"),
    )


async def on_elicitation(_context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    schema = getattr(params, "requestedSchema", None) or {}
    SEEN.elicitation_requests.append(
        {"atMs": since_start_ms(), "message": params.message, "requiredFields": schema.get("required", [])}
    )
    return types.ElicitResult(action="accept", content={"name": ELICITED_NAME, "check": True})


async def on_list_roots(_context: Any) -> types.ListRootsResult:
    SEEN.roots_requests.append({"atMs": since_start_ms(), "clientRequestsInFlight": SEEN.in_flight})
    return types.ListRootsResult(roots=[types.Root(uri=AnyUrl(TEST_ROOT_URI), name=TEST_ROOT_NAME)])


async def on_log(params: types.LoggingMessageNotificationParams) -> None:
    SEEN.log_messages.append({"atMs": since_start_ms(), "data": params.data})


class Connection:
    def __init__(self, session: ClientSession, init: types.InitializeResult, session_id: Callable[[], str | None]):
        self.session = session
        self.init = init
        self.session_id = session_id


@asynccontextmanager
async def connect(url: str, message_handler: Any = None) -> AsyncIterator[Connection]:
    async with streamable_http_client(url) as (read, write, get_session_id):
        async with ClientSession(
            read,
            write,
            sampling_callback=on_sampling,
            elicitation_callback=on_elicitation,
            list_roots_callback=on_list_roots,
            logging_callback=on_log,
            message_handler=message_handler,
            client_info=types.Implementation(name="mcpgate-e2e-py", version="0.1.0"),
        ) as session:
            init = await session.initialize()
            yield Connection(session, init, get_session_id)


async def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await anyio.sleep(0.02)
    return True


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def scenario_initialize(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        caps = conn.init.capabilities.model_dump(exclude_none=True)
        return {
            "serverName": conn.init.serverInfo.name,
            "serverVersion": conn.init.serverInfo.version,
            "protocolVersion": conn.init.protocolVersion,
            "sessionIdPresent": bool(conn.session_id()),
            "capabilities": sorted(caps.keys()),
            "instructionsLength": len(conn.init.instructions or ""),
        }


async def scenario_tools_list(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = await SEEN.tracked(conn.session.list_tools(cursor=cursor))
            names.extend(t.name for t in page.tools)
            cursor = page.nextCursor
            if not cursor:
                break
        return {"toolNames": sorted(names)}


async def scenario_tools_call(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        echo = await SEEN.tracked(conn.session.call_tool("echo", {"message": "hello through mcpgate"}))
        total = await SEEN.tracked(conn.session.call_tool("get-sum", {"a": 19, "b": 23}))
        return {"echoText": text_of(echo), "echoIsError": bool(echo.isError), "sumText": text_of(total)}


def content_summary(read: types.ReadResourceResult) -> list[dict[str, Any]]:
    return [
        {
            "uri": str(c.uri),
            "mimeType": c.mimeType,
            "textLength": len(getattr(c, "text", "") or ""),
            "blobLength": len(getattr(c, "blob", "") or ""),
        }
        for c in read.contents
    ]


async def scenario_resources(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        listed = await SEEN.tracked(conn.session.list_resources())
        templates = await SEEN.tracked(conn.session.list_resource_templates())
        first_uri = str(listed.resources[0].uri) if listed.resources else None
        read_first = await SEEN.tracked(conn.session.read_resource(AnyUrl(first_uri))) if first_uri else None
        templated = await SEEN.tracked(conn.session.read_resource(AnyUrl("demo://resource/dynamic/text/7")))
        return {
            "resourceCount": len(listed.resources),
            "resourceUris": [str(r.uri) for r in listed.resources],
            "templateUris": sorted(t.uriTemplate for t in templates.resourceTemplates),
            "firstUri": first_uri,
            "readFirst": content_summary(read_first) if read_first else [],
            "readTemplated": content_summary(templated),
            "templatedText": "\n".join(getattr(c, "text", "") or "" for c in templated.contents),
        }


async def scenario_prompts(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        listed = await SEEN.tracked(conn.session.list_prompts())
        simple = await SEEN.tracked(conn.session.get_prompt("simple-prompt"))
        with_args = await SEEN.tracked(conn.session.get_prompt("args-prompt", {"city": "Oslo", "state": "Viken"}))

        def first_text(prompt: types.GetPromptResult) -> str | None:
            return getattr(prompt.messages[0].content, "text", None) if prompt.messages else None

        return {
            "promptNames": sorted(p.name for p in listed.prompts),
            "simpleText": first_text(simple),
            "argsText": first_text(with_args),
        }


async def scenario_progress(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        progress: list[dict[str, Any]] = []
        t0 = time.monotonic()

        def ms() -> float:
            return round((time.monotonic() - t0) * 1000, 1)

        async def on_progress(done: float, total: float | None, _message: str | None) -> None:
            progress.append({"progress": done, "total": total, "atMs": ms()})

        result = await SEEN.tracked(
            conn.session.call_tool(
                TOOL_PREFIX + "trigger-long-running-operation",
                {"duration": 2, "steps": 4},
                progress_callback=on_progress,
            )
        )
        result_at = ms()
        return {"progress": progress, "resultAtMs": result_at, "resultText": text_of(result), "stepIntervalMs": 500}


async def scenario_sampling(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        result = await SEEN.tracked(
            conn.session.call_tool(TOOL_PREFIX + "trigger-sampling-request", {"prompt": "what is a gateway?", "maxTokens": 77})
        )
        return {"samplingRequests": SEEN.sampling_requests, "resultText": text_of(result), "model": SAMPLED_MODEL}


async def scenario_elicitation(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        result = await SEEN.tracked(conn.session.call_tool(TOOL_PREFIX + "trigger-elicitation-request", {}))
        return {
            "elicitationRequests": SEEN.elicitation_requests,
            "resultText": text_of(result),
            "elicitedName": ELICITED_NAME,
        }


async def scenario_roots(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        connected_at = since_start_ms()
        # server-everything asks for roots by itself 350 ms after `notifications/initialized`,
        # outside any request of ours, so that request travels on the GET stream, if the stream
        # is open by then (a slow start loses it, by the server's own design). So the scenario
        # also asks again the deterministic way: `notifications/roots/list_changed` makes the
        # server send a new roots/list, unrelated to any request, once the GET stream is open.
        initial_arrived = await wait_for(lambda: len(SEEN.roots_requests) > 0, 3)
        count_before = len(SEEN.roots_requests)
        await conn.session.send_roots_list_changed()
        after_list_changed = await wait_for(lambda: len(SEEN.roots_requests) > count_before, 10)
        logged = await wait_for(
            lambda: any(str(m["data"]).startswith("Roots updated") for m in SEEN.log_messages), 5
        )
        listed = await SEEN.tracked(conn.session.call_tool(TOOL_PREFIX + "get-roots-list", {}))
        return {
            "connectedAtMs": connected_at,
            "initialRootsRequestArrived": initial_arrived,
            "countBeforeListChanged": count_before,
            "rootsRequestAfterListChanged": after_list_changed,
            "rootsRequests": SEEN.roots_requests,
            "rootsUpdatedLogged": logged,
            "logMessages": [str(m["data"]) for m in SEEN.log_messages],
            "rootsToolText": text_of(listed),
            "rootUri": TEST_ROOT_URI,
        }


async def scenario_virtual(url: str) -> dict[str, Any]:
    """A virtual API over several upstreams (tests/tests/virtual_server.rs): every page of every
    list, then for each upstream named in MCPGATE_E2E_UPSTREAMS (tools are `<name>__<tool>`) a
    call, a sum and a prompt; reads; an unknown prefix; ping. Leaving the context sends DELETE."""
    upstreams = [u for u in os.environ.get("MCPGATE_E2E_UPSTREAMS", "").split(",") if u]
    async with connect(url) as conn:
        s = conn.session

        async def every_page(list_page: Callable[[str | None], Awaitable[Any]], field: str) -> list[Any]:
            out: list[Any] = []
            cursor: str | None = None
            while True:
                page = await SEEN.tracked(list_page(cursor))
                out.extend(getattr(page, field))
                cursor = page.nextCursor
                if not cursor:
                    return out

        tools = await every_page(lambda c: s.list_tools(cursor=c), "tools")
        prompts = await every_page(lambda c: s.list_prompts(cursor=c), "prompts")
        resources = await every_page(lambda c: s.list_resources(cursor=c), "resources")
        templates = await every_page(lambda c: s.list_resource_templates(cursor=c), "resourceTemplates")
        calls: dict[str, str] = {}
        sums: dict[str, str] = {}
        prompt_texts: dict[str, str | None] = {}
        for u in upstreams:
            calls[u] = text_of(await SEEN.tracked(s.call_tool(f"{u}__echo", {"message": f"hi {u}"})))
            sums[u] = text_of(await SEEN.tracked(s.call_tool(f"{u}__get-sum", {"a": 2, "b": 40})))
            prompt = await SEEN.tracked(s.get_prompt(f"{u}__args-prompt", {"city": "Oslo"}))
            prompt_texts[u] = getattr(prompt.messages[0].content, "text", None) if prompt.messages else None
        first_uri = str(resources[0].uri) if resources else None
        read = await SEEN.tracked(s.read_resource(AnyUrl(first_uri))) if first_uri else None
        templated = await SEEN.tracked(s.read_resource(AnyUrl("demo://resource/dynamic/text/7")))
        try:
            await s.call_tool("nobody__echo", {"message": "x"})
            unknown_tool: str | None = None
        except Exception as error:  # noqa: BLE001 - the refusal is the observation
            unknown_tool = describe(error)
        ping = await SEEN.tracked(s.send_ping())
        return {
            "serverName": conn.init.serverInfo.name,
            "protocolVersion": conn.init.protocolVersion,
            "sessionIdPresent": bool(conn.session_id()),
            "capabilities": sorted(conn.init.capabilities.model_dump(exclude_none=True).keys()),
            "instructions": conn.init.instructions or "",
            "toolNames": sorted(t.name for t in tools),
            "promptNames": sorted(p.name for p in prompts),
            "resourceUris": [str(r.uri) for r in resources],
            "templateNames": sorted(t.name for t in templates),
            "calls": calls,
            "sums": sums,
            "promptTexts": prompt_texts,
            "readFirst": content_summary(read) if read else [],
            "templatedText": "\n".join(getattr(c, "text", "") or "" for c in templated.contents),
            "unknownTool": unknown_tool,
            "ping": ping.model_dump(exclude_none=True),
        }


async def scenario_ping(url: str) -> dict[str, Any]:
    async with connect(url) as conn:
        t0 = time.monotonic()
        result = await SEEN.tracked(conn.session.send_ping())
        rtt = round((time.monotonic() - t0) * 1000, 1)
        return {"pingResult": result.model_dump(exclude_none=True), "rttMs": rtt}


async def scenario_terminate(url: str) -> dict[str, Any]:
    # Leaving streamable_http_client's context sends the DELETE (terminate_on_close=True).
    async with connect(url) as conn:
        session_id = conn.session_id()
        protocol_version = conn.init.protocolVersion
        before = await SEEN.tracked(conn.session.send_ping())
    # The SDK is gone with its context, so the follow-up is sent the way a stale or malicious
    # client would: by hand, with the old id.
    async with httpx.AsyncClient(timeout=10) as http:
        follow_up = await http.post(
            url,
            headers={
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
                "mcp-session-id": session_id or "",
                "mcp-protocol-version": protocol_version,
            },
            content=json.dumps({"jsonrpc": "2.0", "id": 4242, "method": "ping"}),
        )
    return {
        "sessionIdPresent": bool(session_id),
        "pingBeforeTerminate": before.model_dump(exclude_none=True),
        "followUpStatus": follow_up.status_code,
        "followUpBody": follow_up.text,
    }


def failure(error: BaseException) -> dict[str, Any]:
    """A JSON-RPC error as an observation: its code (None when the SDK raised something else)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    code = getattr(getattr(error, "error", None), "code", None)
    return {"code": code, "message": str(error)}


async def scenario_integrity_tools(url: str) -> dict[str, Any]:
    """Tool integrity (tests/tests/integrity.rs, against py/pin_server.py): what the client sees of
    the tools and prompts, and what using them does."""
    out: dict[str, Any] = {"tools": None, "listError": None, "prompts": None, "promptsError": None, "calls": {}}
    async with connect(url) as conn:
        try:
            tools: list[types.Tool] = []
            cursor: str | None = None
            while True:
                page = await conn.session.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.nextCursor
                if not cursor:
                    break
            out["tools"] = [
                {
                    "name": t.name,
                    "description": t.description,
                    "inputProperties": sorted((t.inputSchema or {}).get("properties", {}).keys()),
                }
                for t in tools
            ]
        except Exception as error:  # noqa: BLE001 - an error is an observation
            out["listError"] = failure(error)
        try:
            prompts = await conn.session.list_prompts()
            out["prompts"] = [{"name": p.name, "description": p.description} for p in prompts.prompts]
        except Exception as error:  # noqa: BLE001
            out["promptsError"] = failure(error)
        for name, args in (("echo", {"text": "hi"}), ("get_forecast", {"city": "Paris"})):
            try:
                result = await conn.session.call_tool(name, args)
                out["calls"][name] = {"ok": not result.isError, "text": text_of(result)}
            except Exception as error:  # noqa: BLE001
                out["calls"][name] = failure(error)
        try:
            await conn.session.get_prompt("briefing", {"topic": "pins"})
            out["prompt"] = {"ok": True}
        except Exception as error:  # noqa: BLE001
            out["prompt"] = failure(error)
    return out


async def scenario_integrity_list_changed(url: str) -> dict[str, Any]:
    """Lists, calls pin-server's `mutate` (new definitions + notifications/tools/list_changed),
    waits for the notification, lists again."""
    changed: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            changed.append(message.root.method)

    async def describe(conn: Connection) -> Any:
        try:
            return [{"name": t.name, "description": t.description} for t in (await conn.session.list_tools()).tools]
        except Exception as error:  # noqa: BLE001
            return failure(error)

    async with connect(url, message_handler=on_message) as conn:
        before = await describe(conn)
        again = await describe(conn)
        await conn.session.call_tool("mutate", {"variant": "b"})
        notified = await wait_for(lambda: bool(changed), 15)
        after = await describe(conn)
        try:
            result = await conn.session.call_tool("get_forecast", {"city": "Paris"})
            call_after: dict[str, Any] = {"ok": not result.isError, "text": text_of(result)}
        except Exception as error:  # noqa: BLE001
            call_after = failure(error)
    return {"before": before, "again": again, "notified": notified, "after": after, "callAfter": call_after}


SCENARIOS: dict[str, Callable[[str], Awaitable[dict[str, Any]]]] = {
    "initialize": scenario_initialize,
    "tools_list": scenario_tools_list,
    "tools_call": scenario_tools_call,
    "resources": scenario_resources,
    "prompts": scenario_prompts,
    "progress": scenario_progress,
    "sampling": scenario_sampling,
    "elicitation": scenario_elicitation,
    "roots": scenario_roots,
    "ping": scenario_ping,
    "terminate": scenario_terminate,
    "virtual": scenario_virtual,
    "integrity_tools": scenario_integrity_tools,
    "integrity_list_changed": scenario_integrity_list_changed,
}


def describe(error: BaseException) -> str:
    # anyio wraps task failures in exception groups; the leaf says what actually went wrong.
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python client.py <mcp-url> <scenario>", file=sys.stderr)
        return 2
    url, scenario = sys.argv[1], sys.argv[2]
    run = SCENARIOS.get(scenario)
    if run is None:
        print(json.dumps({"scenario": scenario, "error": f"unknown scenario {scenario}"}))
        return 2
    try:
        observations = anyio.run(run, url)
    except BaseException as error:  # noqa: BLE001 - report every failure as an observation
        print(json.dumps({"scenario": scenario, "error": describe(error), "stack": traceback.format_exc()}))
        return 1
    print(json.dumps({"scenario": scenario, **observations}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
