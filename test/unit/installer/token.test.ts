import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FileTokenSource, TokenRequestSource } from '../../../src/installer/token.js';
import { tempDir } from './helpers.js';

t.test('file token: read fresh on every call', async (t) => {
  const dir = tempDir(t);
  const src = new FileTokenSource(dir);
  await t.rejects(src.current(), /ENOENT/);
  await fs.writeFile(path.join(dir, 'token'), 'a\n');
  t.same(await src.current(), { token: 'a', expiresAt: null });
  await fs.writeFile(path.join(dir, 'token'), 'b');
  t.equal((await src.current()).token, 'b');
  await fs.writeFile(path.join(dir, 'token'), '');
  await t.rejects(src.current(), /is empty/);
  t.match(src.description, dir);
});

t.test('TokenRequest: cached, refreshed at 80% of its lifetime, old token kept while a refresh fails', async (t) => {
  const calls: unknown[] = [];
  let fail = false;
  let n = 0;
  const src = new TokenRequestSource(
    async (req) => {
      calls.push(req);
      if (fail) throw new Error('forbidden');
      n++;
      return { token: `tok-${n}`, expirationTimestamp: new Date(Date.UTC(2030, 0, 1, 1, 0, 0)) };
    },
    { namespace: 'asm-cni', serviceAccount: 'asm-cni-plugin', expirationSeconds: 3600 },
  );
  const t0 = new Date(Date.UTC(2030, 0, 1, 0, 0, 0));
  const at = (min: number) => new Date(t0.getTime() + min * 60_000);
  t.equal((await src.current(t0)).token, 'tok-1');
  t.same(calls[0], { namespace: 'asm-cni', serviceAccount: 'asm-cni-plugin', expirationSeconds: 3600 });
  t.equal((await src.current(at(47))).token, 'tok-1', 'cached before 80%');
  t.equal(calls.length, 1);
  t.equal((await src.current(at(49))).token, 'tok-2', 'refreshed after 80% (48 min)');
  fail = true;
  // tok-2 was issued at 49min and expires at 60min: refresh due after ~57.8min
  t.equal((await src.current(at(59))).token, 'tok-2', 'refresh failed: old token still valid');
  await t.rejects(src.current(at(61)), /TokenRequest for ServiceAccount asm-cni\/asm-cni-plugin failed: forbidden/);
  const empty = new TokenRequestSource(async () => ({ token: '', expirationTimestamp: new Date() }), {
    namespace: 'a',
    serviceAccount: 'b',
    expirationSeconds: 600,
  });
  await t.rejects(empty.current(), /returned no token/);
});
