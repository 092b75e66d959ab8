"""What an upstream built on the official Python SDK makes of request bodies, for the gateway's
differential test (tests/tests/acl_differential.rs).

Reads a file of base64 bodies, one per line; prints one JSON object per body: the SDK's
Streamable HTTP server path (`json.loads` of the body bytes, `JSONRPCMessage.model_validate`),
then the typed request (`ClientRequest`) whose `params.uri` is the `AnyUrl` a server acts on.
"""

import base64
import json
import sys

from mcp.types import ClientRequest, JSONRPCMessage


def text(value):
    """A str as printable JSON, or None; one with a lone surrogate is marked instead."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "(ill-formed UTF-16)"
    return value


def view(body: bytes) -> dict:
    raw = json.loads(body)
    if isinstance(raw, list):
        return {"ok": False, "why": "batch"}
    message = JSONRPCMessage.model_validate(raw).root
    params = getattr(message, "params", None) or {}
    out = {
        "ok": True,
        "method": text(getattr(message, "method", None)),
        "hasId": hasattr(message, "id"),
        "id": text(message.id) if isinstance(getattr(message, "id", None), str) else getattr(message, "id", None),
        "name": text(params.get("name")),
        "uri": text(params.get("uri")),
    }
    if out["method"] is not None and hasattr(message, "id"):
        try:
            typed = ClientRequest.model_validate({"method": out["method"], "params": params}).root
            uri = getattr(typed.params, "uri", None)
            out["uriHref"] = text(str(uri)) if uri is not None else None
        except Exception as e:  # the server would answer an error: it acts on nothing
            out["typedError"] = str(e)[:120]
    return out


def main() -> None:
    with open(sys.argv[1], encoding="ascii") as lines:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                out = view(base64.b64decode(line))
            except Exception as e:
                out = {"ok": False, "why": str(e)[:120]}
            print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
