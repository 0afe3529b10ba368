// Node `ws` echo benchmark client (benchmarks/echo): the same plan and result line as
// benchmarks/echo/clients.py.
//
//   node echo_client.js URI PLAN_JSON
//
// Phases: {"kind": "rtt"|"pipe", "size": S, "count": C, "warmup": W, "window": N}; prints one
// JSON line {"impl": "node-ws", "phases": [...], "error": null}.
'use strict';

const WebSocket = require('ws');
const { payload, cpuSeconds } = require('./common');

const [uri, planText] = process.argv.slice(2);
const plan = JSON.parse(planText);
const ns = () => process.hrtime.bigint();
const results = [];

function fail(msg) {
  if (finished) return; // errors after the result line (e.g. during the close) do not matter
  process.stdout.write(JSON.stringify({ impl: 'node-ws', error: msg }) + '\n');
  process.exit(1);
}

const ws = new WebSocket(uri, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
ws.binaryType = 'nodebuffer';
let i = -1;
let finished = false;
let ph, data, total, received, sent, first, samples, t0, tStart, c0;

function next() {
  i++;
  if (i >= plan.length) {
    process.stdout.write(JSON.stringify({ impl: 'node-ws', phases: results, error: null }) + '\n');
    finished = true;
    ws.close();
    return;
  }
  ph = plan[i];
  ph.warmup = ph.warmup || 0;
  ph.window = ph.window || 1;
  data = payload(ph.size);
  total = ph.warmup + ph.count;
  received = 0;
  first = true;
  c0 = cpuSeconds();
  if (ph.kind === 'rtt') {
    samples = [];
    t0 = ns();
    ws.send(data, { binary: true });
  } else {
    tStart = ns();
    sent = Math.min(ph.window, total);
    for (let k = 0; k < sent; k++) ws.send(data, { binary: true });
  }
}

ws.on('open', next);
ws.on('message', (msg) => {
  const t1 = ns();
  if (first) {
    first = false;
    if (!Buffer.isBuffer(msg) || !msg.equals(data)) fail(`echo differs: sent ${data.length}, got ${msg.length}`);
  } else if (msg.length !== data.length) fail(`echo of ${msg.length} bytes for ${data.length}`);
  received++;
  if (ph.kind === 'rtt') {
    if (received > ph.warmup) samples.push(Number(t1 - t0));
    if (received >= total) {
      results.push(Object.assign({}, ph, { samples_ns: samples, cpu_s: cpuSeconds() - c0 }));
      next();
      return;
    }
    t0 = ns();
    ws.send(data, { binary: true });
    return;
  }
  if (received === ph.warmup || (ph.warmup === 0 && received === 1)) {
    tStart = t1;
    c0 = cpuSeconds();
  }
  if (sent < total) {
    sent++;
    ws.send(data, { binary: true });
  }
  if (received >= total) {
    results.push(Object.assign({}, ph, { elapsed_s: Number(ns() - tStart) / 1e9, cpu_s: cpuSeconds() - c0 }));
    next();
  }
});
ws.on('error', (err) => fail(String(err && err.message)));
ws.on('close', () => process.exit(0));
setTimeout(() => fail('timeout after 120 s'), 120000).unref();
