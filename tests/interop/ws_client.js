// A Node `ws` client for wsfast's interop tests (tests/interop/test_node_ws.py).
//
//   node ws_client.js '<config JSON>'
//
// config: {"url": "ws://127.0.0.1:N/path",
//          "perMessageDeflate": {...} | false,
//          "messages": [{"binary": bool, "size": bytes, "fragments": n (default 1),
//                        "byteSplit": bool (text: split the UTF-8 bytes, not the characters)}
//                       or {"binary": bool, "rawHex": "..."} (bytes the server should refuse
//                       by closing: no echo awaited, must be last)],
//          "close": {"by": "client" | "server", "code": N, "reason": "..."}}
//
// Sends each message (deterministic content of exactly `size` bytes; text mixes ASCII with
// 2- and 3-byte UTF-8 characters), in `fragments` frames, waits for the echo and compares it
// byte for byte. Then closes: "client" calls ws.close(code, reason); "server" sends the text
// "__close__ CODE REASON", which asks the wsfast echo server to close. Prints one JSON line:
//   {"response": <Sec-WebSocket-Extensions of the 101>, "extensions": ws.extensions,
//    "sent": [{"binary", "length", "sha256"}], "mismatches": [...],
//    "close": {"code", "reason"}, "error": null | "..."}
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const config = JSON.parse(process.argv[2]);
const result = { response: null, extensions: null, sent: [], mismatches: [], close: null, error: null };
let finished = false;
function finish(error) {
  if (finished) return;
  finished = true;
  if (error) result.error = String(error);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(error ? 2 : 0);
}
setTimeout(() => finish('timeout in ws_client.js'), config.timeoutMs || 20000).unref();

function mulberry32(seed) {
  return function () {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['lorem ', 'ipsum ', 'dolor ', 'sit ', 'amet, ', 'é', 'ß', '€', '中文', 'Ω', '\n', '{"k": 1}'];

function makeText(size, seed) {
  const rnd = mulberry32(seed);
  const parts = [];
  let n = 0;
  while (n < size) {
    let piece = PIECES[Math.floor(rnd() * PIECES.length)];
    if (Buffer.byteLength(piece) > size - n) piece = 'x';
    parts.push(piece);
    n += Buffer.byteLength(piece);
  }
  return parts.join('');
}

function makeBinary(size, seed) {
  const rnd = mulberry32(seed);
  const buf = Buffer.alloc(size);
  const half = size >> 1;
  for (let i = 0; i < half; i++) buf[i] = Math.floor(rnd() * 256); // incompressible half
  for (let i = half; i < size; i++) buf[i] = (i * 7) % 251; // compressible half
  return buf;
}

function split(value, n) {
  const len = value.length;
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(value.slice(Math.floor((len * i) / n), Math.floor((len * (i + 1)) / n)));
  return parts;
}

const ws = new WebSocket(config.url, {
  perMessageDeflate: config.perMessageDeflate === undefined ? false : config.perMessageDeflate,
  maxPayload: 64 * 1024 * 1024,
});

ws.on('upgrade', (res) => {
  result.response = res.headers['sec-websocket-extensions'] || null;
});

let pending = null; // {expected: Buffer, binary: bool, index}
result.pongs = 0;
ws.on('pong', () => { result.pongs += 1; });
let index = 0;

function sendNext() {
  if (index >= config.messages.length) {
    const c = config.close || { by: 'client', code: 1000, reason: '' };
    if (c.by === 'server') ws.send(`__close__ ${c.code} ${c.reason}`);
    else ws.close(c.code, c.reason);
    return;
  }
  const spec = config.messages[index];
  if (spec.rawHex !== undefined) {
    // Raw bytes, as a text or binary message, that the server is expected to refuse by
    // closing (e.g. invalid UTF-8): no echo is awaited.
    pending = { expected: null, binary: !!spec.binary, index, expectClose: true };
    ws.send(Buffer.from(spec.rawHex, 'hex'), { binary: !!spec.binary });
    return;
  }
  const value = spec.binary ? makeBinary(spec.size, index + 1) : makeText(spec.size, index + 1);
  const expected = spec.binary ? value : Buffer.from(value, 'utf8');
  if (expected.length !== spec.size) return finish(`generator made ${expected.length} bytes, not ${spec.size}`);
  result.sent.push({
    binary: !!spec.binary,
    length: expected.length,
    sha256: crypto.createHash('sha256').update(expected).digest('hex'),
  });
  pending = { expected, binary: !!spec.binary, index };
  // "byteSplit": cut the UTF-8 bytes of a text anywhere, even inside a character (only the
  // whole message must be valid UTF-8, RFC 6455 §5.6). A ping goes between the first two
  // fragments (control frames may be interleaved, §5.4).
  const parts = split(spec.byteSplit ? expected : value, spec.fragments || 1);
  parts.forEach((part, i) => {
    ws.send(part, { binary: !!spec.binary, fin: i === parts.length - 1 });
    if (i === 0 && parts.length > 1) ws.ping(Buffer.from('between fragments'));
  });
}

ws.on('open', () => {
  result.extensions = ws.extensions;
  sendNext();
});

ws.on('message', (data, isBinary) => {
  if (pending === null || pending.expectClose) {
    result.mismatches.push({ index: -1, what: 'unexpected message', length: data.length });
    return;
  }
  if (isBinary !== pending.binary) {
    result.mismatches.push({ index: pending.index, what: `echo binary=${isBinary}` });
  } else if (!data.equals(pending.expected)) {
    result.mismatches.push({
      index: pending.index,
      what: `echo differs: ${data.length} bytes, expected ${pending.expected.length}`,
    });
  }
  pending = null;
  index += 1;
  sendNext();
});

ws.on('close', (code, reason) => {
  result.close = { code, reason: reason.toString('utf8') };
  finish(pending === null || pending.expectClose ? null : `closed while waiting for echo #${pending.index}`);
});

ws.on('error', (err) => finish(`ws error: ${err && err.message}`));
