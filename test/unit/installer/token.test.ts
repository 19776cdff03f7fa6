import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { installerKubeConfig } from '../../../src/installer/kube.js';
import { selfSubjectReviewProbe } from '../../../src/installer/main.js';
import { FileTokenSource, TokenCheck, TokenRequestSource } from '../../../src/installer/token.js';
import { startFakeApi } from './fake-api.js';
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

t.test(
  'TokenRequest: a rejected token is replaced at once, counted by reason, and never handed out again',
  async (t) => {
    const reasons: string[] = [];
    let fail = false;
    let n = 0;
    const src = new TokenRequestSource(
      async () => {
        if (fail) throw new Error('serviceaccounts "asm-cni-plugin" not found');
        n++;
        return { token: `tok-${n}`, expirationTimestamp: new Date(Date.UTC(2030, 0, 1, 1, 0, 0)) };
      },
      {
        namespace: 'asm-cni',
        serviceAccount: 'asm-cni-plugin',
        expirationSeconds: 3600,
        onRefresh: (r) => reasons.push(r),
      },
    );
    const t0 = new Date(Date.UTC(2030, 0, 1, 0, 0, 0));
    const at = (min: number) => new Date(t0.getTime() + min * 60_000);
    t.equal(src.cachedToken, null);
    src.reject(); // nothing to reject yet
    t.equal(src.rejectedPending, false);
    t.equal((await src.current(t0)).token, 'tok-1');
    t.equal((await src.current(at(49))).token, 'tok-2');
    t.equal(src.cachedToken, 'tok-2');
    src.reject();
    t.equal(src.rejectedPending, true);
    fail = true;
    // the ServiceAccount is being recreated: no new token yet, and the refused one is not a fallback though unexpired
    await t.rejects(src.current(at(50)), /failed: serviceaccounts "asm-cni-plugin" not found/);
    t.equal(src.rejectedPending, true, 'still pending');
    fail = false;
    t.equal((await src.current(at(50))).token, 'tok-3', 'a new token as soon as one can be had, long before 80%');
    t.equal(src.rejectedPending, false);
    t.same(reasons, ['initial', 'expiring', 'rejected']);
  },
);

t.test(
  'TokenCheck: probes at most once per interval, a new token at once; a 401 marks the token rejected',
  async (t) => {
    let clock = 0;
    let n = 0;
    const src = new TokenRequestSource(
      async () => ({ token: `tok-${++n}`, expirationTimestamp: new Date(Date.UTC(2030, 0, 1)) }),
      { namespace: 'a', serviceAccount: 'b', expirationSeconds: 3600 },
    );
    const probed: string[] = [];
    const refused = new Set<string>();
    let unreachable = false;
    let rejections = 0;
    const check = new TokenCheck(
      src,
      async (token) => {
        probed.push(token);
        if (unreachable) return 'unknown';
        return refused.has(token) ? 'rejected' : 'accepted';
      },
      { minIntervalMs: 5000, now: () => clock, onRejected: () => rejections++ },
    );
    t.equal(await check.check(), 'skipped', 'no token yet');
    await src.current(new Date(Date.UTC(2029, 0, 1)));
    t.equal(await check.check(), 'accepted');
    clock = 4999;
    t.equal(await check.check(), 'skipped', 'within the interval');
    clock = 5000;
    unreachable = true;
    t.equal(await check.check(), 'unknown', 'unreachable says nothing about the token');
    t.equal(src.rejectedPending, false, 'and does not throw it away');
    unreachable = false;
    refused.add('tok-1');
    clock = 10_000;
    t.equal(await check.check(), 'rejected');
    t.equal(rejections, 1);
    t.equal(check.pending, true);
    clock = 10_001;
    t.equal(await check.check(), 'skipped', 'known refused: nothing to probe until a new token is had');
    t.same(probed, ['tok-1', 'tok-1', 'tok-1']);
    await src.current(new Date(Date.UTC(2029, 0, 1)));
    t.equal(check.pending, false);
    t.equal(await check.check(), 'accepted', 'the new token is probed at once');
    t.same(probed.at(-1), 'tok-2');
  },
);

t.test('selfSubjectReviewProbe: 401 is rejected, another answer accepted, no answer unknown', async (t) => {
  const api = await startFakeApi();
  t.teardown(() => api.close());
  const saDir = tempDir(t);
  await fs.writeFile(path.join(saDir, 'token'), 'installer-token');
  const probe = selfSubjectReviewProbe(installerKubeConfig(api.url, saDir));
  api.rejectedTokens.add('old');
  t.equal(await probe('old'), 'rejected');
  t.equal(await probe('new'), 'accepted');
  const ssr = api.requests.filter((r) => r.path === '/apis/authentication.k8s.io/v1/selfsubjectreviews');
  t.same(
    ssr.map((r) => r.auth),
    ['Bearer old', 'Bearer new'],
    "with the plugin's token, not the installer's",
  );
  t.match(ssr[0]!.body, { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  const gone = selfSubjectReviewProbe(installerKubeConfig(api.url.replace(/:\d+$/, ':1'), saDir));
  t.equal(await gone('new'), 'unknown');
  const forbidden = selfSubjectReviewProbe(installerKubeConfig(`${api.url}/nothing-here`, saDir));
  t.equal(await forbidden('new'), 'accepted', 'a 404 comes after authentication');
});

t.test('selfSubjectReviewProbe: an API server that never answers gives unknown after the hang guard', async (t) => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => void sockets.push(socket)); // accepts, never answers
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const saDir = tempDir(t);
  const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  t.equal(await selfSubjectReviewProbe(installerKubeConfig(url, saDir), 50)('tok'), 'unknown');
});
