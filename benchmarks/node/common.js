// Helpers shared by the Node benchmark scripts (the same payload bytes as benchmarks/echo/_common.py).
'use strict';

function payload(size) {
  const block = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) block[i] = (i * 131 + 7) & 0xff;
  const out = Buffer.alloc(size);
  for (let off = 0; off < size; off += 256) block.copy(out, off, 0, Math.min(256, size - off));
  return out;
}

// "--name value" pairs into an object (defaults first); bare arguments into args._.
function parseArgs(argv, defaults) {
  const out = Object.assign({ _: [] }, defaults);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) out[a.slice(2)] = argv[++i];
    else out._.push(a);
  }
  return out;
}

// CPU seconds (user + system) of this process.
function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

module.exports = { payload, parseArgs, cpuSeconds };
