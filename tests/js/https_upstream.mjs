// An `https://` MCP upstream for the TLS end-to-end tests (tests/tests/tls.rs): Node's own `https`
// server (OpenSSL) terminating TLS in front of an HTTP MCP server, every request and response
// streamed through as is (event streams included). Optionally requires client certificates
// signed by a CA. It counts what the gateway's TLS client did: connections, resumed sessions
// (TLS session tickets) and the client certificates' common names, served at `GET /__tls`.
//
// Usage: node https_upstream.mjs <port> <cert.pem> <key.pem> <http://target-origin> [client-ca.pem]
// Prints "https upstream listening on port <port>" once it accepts connections.

import fs from "node:fs";
import http from "node:http";
import https from "node:https";

const [port, certFile, keyFile, target, clientCa] = process.argv.slice(2);
if (!port || !certFile || !keyFile || !target) {
  process.stderr.write("usage: node https_upstream.mjs <port> <cert> <key> <target> [client-ca]\n");
  process.exit(2);
}

const stats = { connections: 0, resumed: 0, clientSubjects: [] };
const options = { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
if (clientCa) {
  Object.assign(options, { ca: fs.readFileSync(clientCa), requestCert: true, rejectUnauthorized: true });
}

const server = https.createServer(options, (req, res) => {
  if (req.url === "/__tls") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(stats));
    return;
  }
  const upstream = http.request(
    new URL(req.url, target),
    { method: req.method, headers: req.headers },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", (e) => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
    res.end(String(e));
  });
  req.pipe(upstream);
});

server.on("secureConnection", (socket) => {
  stats.connections += 1;
  if (socket.isSessionReused()) stats.resumed += 1;
  const peer = socket.getPeerCertificate();
  if (peer && peer.subject && peer.subject.CN) stats.clientSubjects.push(peer.subject.CN);
});

server.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write(`https upstream listening on port ${port}\n`);
});
