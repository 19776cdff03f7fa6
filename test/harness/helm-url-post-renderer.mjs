#!/usr/bin/env node
// A helm --post-renderer for the e2e tier: every MutatingWebhookConfiguration entry calls the URL given as the first
// argument (the webhook running on loopback, as the admission scenarios do) instead of the in-cluster Service; its
// caBundle, and everything else the chart rendered, passes through unchanged.
//   helm install ... --post-renderer test/harness/helm-url-post-renderer.mjs --post-renderer-args https://127.0.0.1:PORT/mutate
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';

const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: helm-url-post-renderer.mjs URL < manifests\n');
  process.exit(2);
}
const out = [];
for (const doc of parseAllDocuments(readFileSync(0, 'utf8'), { version: '1.1' })) {
  if (doc.errors.length) {
    process.stderr.write(`post-renderer: unparsable YAML: ${doc.errors[0].message}\n`);
    process.exit(1);
  }
  const obj = doc.toJS();
  if (!obj) continue;
  if (obj.kind === 'MutatingWebhookConfiguration') {
    for (const w of obj.webhooks ?? []) w.clientConfig = { url, caBundle: w.clientConfig?.caBundle };
  }
  out.push(stringify(obj));
}
process.stdout.write(out.join('---\n'));
