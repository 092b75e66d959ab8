wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Mcp-Session-Id"] = os.getenv("SID")
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. os.getenv("TOOL") .. '","arguments":{"message":"hi"}}}'
printed = false
response = function(status, headers, body)
  if not printed and (string.find(body, '"error"') or not string.find(body, 'Echo: hi')) then
    io.write("BAD ANSWER: " .. body .. "\n")
    printed = true
  end
end
