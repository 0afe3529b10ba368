// A Node `ws` echo server for wsfast's interop tests (tests/interop/test_node_ws.py).
//
//   node ws_server.js '{"perMessageDeflate": {...} | false, "echoFragments": n, "rejectStatus": N}'
//
// Listens on 127.0.0.1 (ephemeral port) and reports on stdout, one JSON object a line:
//   {"event": "listening", "port": N}
//   {"event": "handshake", "offer": <Sec-WebSocket-Extensions of the request or null>,
//    "response": <Sec-WebSocket-Extensions of the 101 response or null>}
//   {"event": "message", "binary": bool, "length": bytes, "sha256": hex}
//   {"event": "close", "code": N, "reason": "..."}      (the close frame the client sent)
//   {"event": "error", "message": "..."}
// Every message is echoed exactly (same type, same bytes), in "echoFragments" frames (default
// 1) cut at arbitrary byte offsets. A text message
// "__close__ CODE REASON" makes the server start the closing handshake instead.
// It exits when stdin closes, or after 60 s whatever happens.
'use strict';

const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const opts = JSON.parse(process.argv[2] || '{}');
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: opts.perMessageDeflate === undefined ? false : opts.perMessageDeflate,
  maxPayload: 64 * 1024 * 1024,
  // "rejectStatus": refuse every opening handshake with this HTTP status.
  verifyClient: opts.rejectStatus
    ? (info, cb) => cb(false, opts.rejectStatus, 'rejected by ws_server.js')
    : undefined,
});

wss.on('listening', () => out({ event: 'listening', port: wss.address().port }));

wss.on('headers', (headers, req) => {
  const ext = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
  out({
    event: 'handshake',
    offer: req.headers['sec-websocket-extensions'] || null,
    response: ext ? ext.replace(/^[^:]*:\s*/, '') : null,
  });
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    const sha256 = crypto.createHash('sha256').update(data).digest('hex');
    out({ event: 'message', binary: isBinary, length: data.length, sha256 });
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text.startsWith('__close__ ')) {
        const m = /^__close__ (\d+) ?(.*)$/s.exec(text);
        ws.close(Number(m[1]), m[2]);
        return;
      }
    }
    const n = Math.min(opts.echoFragments || 1, Math.max(data.length, 1));
    for (let i = 0; i < n; i++) {
      // Fragments cut the bytes anywhere, inside UTF-8 characters too.
      const part = data.subarray(Math.floor((data.length * i) / n), Math.floor((data.length * (i + 1)) / n));
      ws.send(part, { binary: isBinary, fin: i === n - 1 });
    }
  });
  ws.on('close', (code, reason) => out({ event: 'close', code, reason: reason.toString('utf8') }));
  ws.on('error', (err) => out({ event: 'error', message: String(err && err.message) }));
});

wss.on('error', (err) => {
  out({ event: 'error', message: String(err && err.message) });
  process.exit(2);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(3), 60000).unref();
