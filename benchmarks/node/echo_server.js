// Node `ws` echo server for wsfast's adapter benchmarks (benchmarks/echo, benchmarks/connections).
//
//   node echo_server.js [--host 127.0.0.1] [--port 0] [--max-size N] [--compression off|deflate]
//
// Prints ws://host:port/ on its first stdout line once listening. Echoes every message (same
// type, same bytes); the text message "__broadcast__ N" sends one N-byte binary message to every
// open connection instead. Exits when stdin closes or on SIGTERM.
'use strict';

const { WebSocketServer } = require('ws');
const { payload, parseArgs } = require('./common');

const args = parseArgs(process.argv.slice(2), { host: '127.0.0.1', port: '0', 'max-size': String(64 * 1024 * 1024), compression: 'off' });

const wss = new WebSocketServer({
  host: args.host,
  port: Number(args.port),
  backlog: 4096,
  perMessageDeflate: args.compression !== 'off',
  maxPayload: Number(args['max-size']) || 0,
  clientTracking: true,
});

wss.on('listening', () => process.stdout.write(`ws://${args.host}:${wss.address().port}/\n`));

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text.startsWith('__broadcast__')) {
        const msg = payload(Number(text.slice(13).trim() || '1024'));
        for (const c of wss.clients) if (c.readyState === 1) c.send(msg, { binary: true });
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});

wss.on('error', (err) => {
  process.stderr.write(`echo_server.js: ${err && err.message}\n`);
  process.exit(2);
});

process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
