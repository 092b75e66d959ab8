wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Mcp-Session-Id"] = os.getenv("SID")
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
-- TOOL=tools/list: the (merged) tools/list instead of a call.
local tool = os.getenv("TOOL")
local listing = tool == "tools/list"
if listing then
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
else
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"message":"hi"}}}'
end
printed = false
response = function(status, headers, body)
  -- A list's tools may mention "error" in their schemas: only a call's answer is searched for it.
  local bad
  if listing then
    bad = not string.find(body, '"result":{"tools":%[')
  else
    bad = string.find(body, '"error"') or not string.find(body, 'Echo: hi')
  end
  if not printed and bad then
    io.write("BAD ANSWER: " .. body .. "\n")
    printed = true
  end
end
