// Connection driver for benchmarks/connections (one Node process drives every server alike).
//
//   node connections.js URL [--n 10000] [--messages 10] [--size 32] [--inflight 200]
//                           [--retries 5] [--broadcast 1024] [--compression off|deflate]
//
// Phases, each reported as one JSON line on stdout; the driver then waits for the next command
// on stdin ("messages", "broadcast", "close") so that the caller can sample the server between
// phases (memory per idle connection, CPU seconds):
//   1. open N connections, at most --inflight handshakes pending at a time (so the server's
//      listen queue does not overflow); a failed attempt is a drop and is retried after 20 ms,
//      up to --retries times, then the connection is lost:
//      {"event": "open", "opened": n, "drops": d, "lost": l, "connect_s": t}
//   2. "messages": every connection sends --messages messages of --size bytes, one at a time
//      (the next after its echo), all connections at once:
//      {"event": "messages", "messages_s": t, "messages": count, "errors": e}
//   3. "broadcast": connection 0 sends "__broadcast__ SIZE"; the server sends one SIZE-byte
//      message to every connection: {"event": "broadcast", "broadcast_s": t, "received": r}
//      (time from the trigger to the last delivery; gives up after 30 s)
//   4. "close": close every connection: {"event": "closed", "close_s": t}, then exit.
'use strict';

const WebSocket = require('ws');
const readline = require('readline');
const { payload, parseArgs } = require('./common');

const args = parseArgs(process.argv.slice(2), {
  n: '10000', messages: '10', size: '32', inflight: '200', retries: '5', broadcast: '1024', compression: 'off',
});
const url = args._[0];
const N = Number(args.n);
const M = Number(args.messages);
const INFLIGHT = Number(args.inflight);
const RETRIES = Number(args.retries);
const BSIZE = Number(args.broadcast);
const data = payload(Number(args.size));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const now = () => Number(process.hrtime.bigint()) / 1e9;

const conns = [];
let started = 0; // connection slots launched
let pending = 0;
let opened = 0;
let drops = 0;
let lost = 0;
let phase = 'open';
let t0 = now();
let done = 0;
let errors = 0;
let bReceived = 0;

function onMessage(ws, msg, isBinary) {
  if (phase === 'messages') {
    if (msg.length !== data.length) errors++;
    ws._count++;
    if (ws._count < M) ws.send(data, { binary: true });
    else if (++done === opened) {
      out({ event: 'messages', messages_s: now() - t0, messages: opened * M, errors });
      setIdle();
    }
  } else if (phase === 'broadcast') {
    if (isBinary && msg.length === BSIZE && !ws._gotBroadcast) {
      ws._gotBroadcast = true;
      if (++bReceived === opened) {
        out({ event: 'broadcast', broadcast_s: now() - t0, received: bReceived });
        setIdle();
      }
    }
  }
}

function attempt(tries) {
  pending++;
  const ws = new WebSocket(url, { perMessageDeflate: args.compression !== 'off', handshakeTimeout: 20000 });
  let isOpen = false;
  ws.on('open', () => {
    isOpen = true;
    pending--;
    opened++;
    ws._count = 0;
    conns.push(ws);
    launch();
  });
  ws.on('message', (msg, isBinary) => onMessage(ws, msg, isBinary));
  ws.on('error', () => {
    if (isOpen) { errors++; return; }
  });
  ws.on('close', () => {
    if (!isOpen) {
      pending--;
      drops++;
      if (tries < RETRIES) setTimeout(() => { attempt(tries + 1); }, 20);
      else { lost++; launch(); }
    } else if (phase === 'closing') {
      if (++done === opened) finishClose();
    }
  });
}

function launch() {
  while (started < N && pending < INFLIGHT) {
    started++;
    attempt(0);
  }
  if (phase === 'open' && opened + lost === N) {
    out({ event: 'open', opened, drops, lost, connect_s: now() - t0 });
    setIdle();
  }
}

function finishClose() {
  out({ event: 'closed', close_s: now() - t0 });
  process.exit(0);
}

// Commands wait for the running phase to finish.
const queue = [];
function setIdle() {
  phase = 'idle';
  if (queue.length) handle(queue.shift());
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = line.trim();
  if (!cmd) return;
  if (phase === 'idle') handle(cmd);
  else queue.push(cmd);
});

function handle(cmd) {
  if (cmd === 'messages') {
    phase = 'messages';
    done = 0;
    errors = 0;
    t0 = now();
    if (opened === 0) { out({ event: 'messages', messages_s: 0, messages: 0, errors }); setIdle(); return; }
    for (const ws of conns) ws.send(data, { binary: true });
  } else if (cmd === 'broadcast') {
    phase = 'broadcast';
    bReceived = 0;
    t0 = now();
    if (opened === 0) { out({ event: 'broadcast', broadcast_s: 0, received: 0 }); setIdle(); return; }
    conns[0].send(`__broadcast__ ${BSIZE}`);
    setTimeout(() => {
      if (phase === 'broadcast') {
        out({ event: 'broadcast', broadcast_s: null, received: bReceived, timeout: true });
        setIdle();
      }
    }, 30000).unref();
  } else if (cmd === 'close') {
    phase = 'closing';
    done = 0;
    t0 = now();
    if (opened === 0) finishClose();
    for (const ws of conns) ws.close();
    setTimeout(finishClose, 15000).unref();
  }
}
rl.on('close', () => { if (phase === 'idle' && !queue.length) process.exit(0); else queue.push('close'); });

launch();
