// TLS policy of the webhook: TLS 1.0/1.1 and weak cipher suites refused, TLS 1.2/1.3 with strong suites served; with
// --client-ca, a client without a certificate from that CA (none, or one from another CA) is refused and the API
// server's client certificate is served. Every refusal is checked against a permissive control server first, so a
// "refused" means the webhook refused it, not that this machine's OpenSSL could not offer it.
import { createServer, connect, type ConnectionOptions } from 'node:tls';
import { join } from 'node:path';
import { makeCA, makeLeaf, type KeyPair } from '../../test/harness/certs.js';
import { configYaml, replaceFile } from '../lib/config.js';
import { onCleanup, subDir } from '../lib/proc.js';
import { Asserts, type Report } from '../lib/report.js';
import { body, loadCorpus, newUid } from '../lib/reviews.js';
import { judge } from '../lib/load.js';
import { AdmissionClient } from '../lib/client.js';
import { startWebhook } from '../lib/webhook.js';

interface Attempt {
  ok: boolean;
  protocol?: string | null;
  cipher?: string;
  error?: string;
}

function handshake(port: number, ca: string, opts: ConnectionOptions): Promise<Attempt> {
  return new Promise((resolve) => {
    let s: ReturnType<typeof connect>;
    try {
      s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...opts }, () => {
        const r = { ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name };
        s.end();
        resolve(r);
      });
    } catch (e) {
      // OpenSSL refuses to even build the offer (e.g. a suite not compiled in)
      resolve({ ok: false, error: (e as Error).message });
      return;
    }
    s.setTimeout(5000, () => s.destroy(new Error('handshake timed out')));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code ?? e.message }));
  });
}

/** A server that accepts everything this OpenSSL can speak: proves an offer is possible. */
async function permissiveControl(leaf: KeyPair): Promise<number> {
  const srv = createServer(
    {
      cert: leaf.cert,
      key: leaf.key,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.3',
      ciphers: 'ALL:eNULL:aNULL:@SECLEVEL=0',
    },
    (s) => s.end(),
  );
  srv.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise<void>((r) => srv.close(() => r())));
  const a = srv.address();
  return typeof a === 'object' && a ? a.port : 0;
}

const LEGACY = 'ALL:@SECLEVEL=0';
/** Suites no admission webhook should accept: no forward secrecy, CBC with SHA-1, 3DES, RC4, NULL, anonymous. */
const WEAK_CIPHERS = [
  'AES128-SHA',
  'AES256-GCM-SHA384',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-RSA-AES256-SHA384',
  'DES-CBC3-SHA',
  'RC4-SHA',
  'NULL-SHA256',
  'ADH-AES128-SHA',
  'AECDH-AES128-SHA',
];

export async function webhookTlsSuite(report: Report): Promise<void> {
  const dir = subDir('webhook-tls');
  const ca = await makeCA(dir, 'soak-ca');
  const leaf = await makeLeaf(dir, ca, 'serving', 'server');
  const configFile = join(subDir('config'), 'config.yaml');
  const logs = subDir('logs');
  replaceFile(configFile, configYaml(['kube-system', 'istio-system']));
  const control = await permissiveControl(leaf);
  const w = await startWebhook({
    name: 'tls',
    certFile: leaf.certFile,
    keyFile: leaf.keyFile,
    configFile,
    logDir: logs,
    ca: ca.cert,
  });

  await report.run('webhook.tls-versions-ciphers', async () => {
    const a = new Asserts();
    const rows: Record<string, unknown>[] = [];
    const notOfferable: string[] = [];
    const check = async (label: string, opts: ConnectionOptions, wantAccepted: boolean): Promise<void> => {
      const ctl = await handshake(control, ca.cert, opts);
      if (!ctl.ok) {
        notOfferable.push(label);
        rows.push({ case: label, control: ctl, webhook: 'not tried: this OpenSSL cannot offer it' });
        return;
      }
      const got = await handshake(w.port, ca.cert, opts);
      rows.push({ case: label, control: ctl, webhook: got });
      a.that(
        got.ok === wantAccepted,
        `${label}: ${got.ok ? `accepted (${got.protocol} ${got.cipher})` : `refused (${got.error})`}, want ${wantAccepted ? 'accepted' : 'refused'}`,
      );
    };
    await check('TLSv1.0', { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: LEGACY }, false);
    await check('TLSv1.1', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: LEGACY }, false);
    for (const c of WEAK_CIPHERS)
      await check(`TLSv1.2 ${c}`, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: `${c}:@SECLEVEL=0` }, false);
    await check('TLSv1.2 default', { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, true);
    await check('TLSv1.3 default', { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, true);
    // The refusals must have been real tries: TLS 1.0, 1.1 and at least the non-PFS and CBC-SHA1 suites.
    a.that(
      !notOfferable.includes('TLSv1.0') && !notOfferable.includes('TLSv1.1'),
      'the client could not offer TLS 1.0/1.1 even to the control server: the check proves nothing',
    );
    const tried = rows.filter((r) => typeof r.webhook === 'object');
    const refused = tried.filter((r) => !(r.webhook as Attempt).ok).length;
    return {
      ok: a.ok,
      summary: a.summary(
        `${tried.length} handshakes tried: ${refused} refused, ${tried.length - refused} accepted (wanted: TLS 1.0, 1.1 and weak suites refused, TLS 1.2/1.3 strong suites accepted); not offerable here: ${notOfferable.join(', ') || 'none'}`,
      ),
      figures: { cases: rows },
    };
  });
  w.child.proc.kill('SIGTERM');

  await report.run('webhook.tls-client-ca', async () => {
    const apiCa = await makeCA(dir, 'apiserver-client-ca');
    const otherCa = await makeCA(dir, 'other-ca');
    const good = await makeLeaf(dir, apiCa, 'kube-apiserver', 'client');
    const stranger = await makeLeaf(dir, otherCa, 'stranger', 'client');
    const m = await startWebhook({
      name: 'tls-client-ca',
      certFile: leaf.certFile,
      keyFile: leaf.keyFile,
      configFile,
      clientCaFile: apiCa.certFile,
      logDir: logs,
      ca: ca.cert,
      clientCert: { cert: good.cert, key: good.key },
    });
    const t = loadCorpus()[0]!;
    const attempt = async (
      who: string,
      cert?: KeyPair,
    ): Promise<{ who: string; answered: boolean; detail: string }> => {
      const client = new AdmissionClient({
        host: '127.0.0.1',
        port: m.port,
        ca: ca.cert,
        maxSockets: 1,
        cert: cert?.cert,
        key: cert?.key,
      });
      try {
        const uid = newUid();
        const r = await client.once('/mutate', body(t, uid), 5000);
        const v = r.status ? judge(r.status, r.body, uid) : { ok: false, problem: r.error };
        return {
          who,
          answered: v.ok,
          detail: v.ok
            ? 'review answered'
            : r.status
              ? `HTTP ${r.status}`
              : `refused: ${(r.error ?? '').split(/[\n:]/)[0]}`,
        };
      } finally {
        client.close();
      }
    };
    const rows = [
      await attempt('no client certificate'),
      await attempt('certificate from another CA', stranger),
      await attempt("the API server's client certificate", good),
    ];
    m.child.proc.kill('SIGTERM');
    const a = new Asserts();
    a.that(!rows[0]!.answered, `a client without a certificate was served`);
    a.that(!rows[1]!.answered, `a client with a certificate from another CA was served`);
    a.that(rows[2]!.answered, `the client with the right certificate was not served: ${rows[2]!.detail}`);
    return {
      ok: a.ok,
      summary: a.summary(rows.map((r) => `${r.who}: ${r.detail}`).join('; ')),
      figures: { attempts: rows },
    };
  });
}
