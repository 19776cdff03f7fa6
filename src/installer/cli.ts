#!/usr/bin/env node
// Entry point of `asm-cni-install` (the DaemonSet's command). SIGTERM/SIGINT stop `run` and leave everything installed.
import { main } from './main.js';

const controller = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => controller.abort());
main(process.argv.slice(2), process.env, { out: process.stdout, err: process.stderr, signal: controller.signal }).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`asm-cni-install: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
