// manifests/components/network-policy: the optional NetworkPolicy in front of the webhook. Checked against the
// Deployment and Service it protects (the pods it selects, the ports it names), and by evaluating who may connect:
// as shipped the webhook port is open and metrics only to labelled scrapers; with the API server's addresses patched
// in as the docs say, only those reach the webhook port.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

/* eslint-disable @typescript-eslint/no-explicit-any */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const manifests = path.join(repoRoot, 'manifests');
const dir = path.join(manifests, 'components', 'network-policy');
const docs = (file: string): any[] =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
const kustomization = parseYaml(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'));
const objects: any[] = (kustomization.resources ?? []).flatMap((r: string) => docs(path.join(dir, r)));
const policy = objects.find((o) => o.kind === 'NetworkPolicy');
const base = readdirSync(path.join(manifests, 'base'))
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((f) => docs(path.join(manifests, 'base', f)));
const deployment = base.find((o) => o.kind === 'Deployment' && o.metadata.name === 'asm-cni-webhook');
const installer = base.find((o) => o.kind === 'DaemonSet');
const service = base.find((o) => o.kind === 'Service' && o.metadata.name === 'asm-cni-webhook');
const container = deployment.spec.template.spec.containers[0];

/** Who connects: an address (the API server, a node, anything outside), or a pod with its labels. */
type Source = { ip: string } | { pod: Record<string, string>; namespace: Record<string, string>; ip: string };

const ipv4 = (ip: string): number => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
function inCidr(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(net!) / size);
}
const selects = (selector: any, labels: Record<string, string>): boolean =>
  Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
  (selector?.matchExpressions ?? []).length === 0;

/** NetworkPolicy ingress semantics, for the selectors this policy uses: is `source` allowed to the named port? */
function allowed(p: any, port: string, source: Source): boolean {
  return p.spec.ingress.some((rule: any) => {
    const portOk = rule.ports === undefined || rule.ports.some((x: any) => x.port === port);
    if (!portOk) return false;
    if (rule.from === undefined || rule.from.length === 0) return true;
    return rule.from.some((peer: any) => {
      if (peer.ipBlock) return inCidr(source.ip, peer.ipBlock.cidr);
      if (!('pod' in source)) return false;
      const nsOk = peer.namespaceSelector === undefined ? false : selects(peer.namespaceSelector, source.namespace);
      return nsOk && selects(peer.podSelector ?? {}, source.pod);
    });
  });
}

const apiServer: Source = { ip: '192.0.2.10' };
const elsewhere: Source = { ip: '198.51.100.7' };
const anyPod: Source = { pod: { app: 'web' }, namespace: { 'kubernetes.io/metadata.name': 'shop' }, ip: '192.0.2.200' };
const scraper: Source = {
  pod: { app: 'prometheus', 'asm-cni.io/metrics-scraper': 'true' },
  namespace: { 'kubernetes.io/metadata.name': 'monitoring' },
  ip: '192.0.2.201',
};

t.test('the component: a Component adding only the NetworkPolicy, every file listed', async (t) => {
  t.equal(kustomization.apiVersion, 'kustomize.config.k8s.io/v1alpha1');
  t.equal(kustomization.kind, 'Component');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  t.same(files.sort(), [...kustomization.resources].sort(), 'every manifest is listed, every listed file exists');
  t.same(
    objects.map((o) => o.kind),
    ['NetworkPolicy'],
  );
  t.equal(policy.apiVersion, 'networking.k8s.io/v1');
});

t.test('it selects the webhook pods, and only them, in their namespace', async (t) => {
  t.equal(policy.metadata.namespace, deployment.metadata.namespace);
  t.ok(selects(policy.spec.podSelector, deployment.spec.template.metadata.labels), 'the webhook pods');
  t.notOk(selects(policy.spec.podSelector, installer.spec.template.metadata.labels), 'not the installer');
  t.same(policy.spec.policyTypes, ['Ingress'], 'ingress only: the webhook makes no calls, egress stays as it is');
});

t.test('the ports it names are the webhook container ports, and every one of them has a rule', async (t) => {
  const named = new Map(container.ports.map((p: any) => [p.name, p.containerPort]));
  const inPolicy = policy.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port));
  for (const port of inPolicy) t.ok(named.has(port), `${port} is a named port of the webhook container`);
  t.same([...new Set(inPolicy)].sort(), [...named.keys()].sort(), 'no container port left without a rule');
  for (const sp of service.spec.ports) t.ok(inPolicy.includes(sp.targetPort), `Service port ${sp.name} is covered`);
  // the probes go to the https port from the node, which NetworkPolicy always allows
  t.equal(container.livenessProbe.httpGet.port, 'https');
});

t.test('as shipped: the webhook port open to all, metrics only to labelled scrapers', async (t) => {
  for (const s of [apiServer, elsewhere, anyPod, scraper]) t.ok(allowed(policy, 'https', s), JSON.stringify(s));
  t.ok(allowed(policy, 'metrics', scraper), 'a labelled scraper in any namespace');
  t.notOk(allowed(policy, 'metrics', anyPod), 'an unlabelled pod');
  t.notOk(allowed(policy, 'metrics', apiServer), 'an address outside the cluster');
});

t.test('with the API server addresses patched in (docs/install.md): only they reach the webhook port', async (t) => {
  const patched = structuredClone(policy);
  // the JSON patch the docs give: add /spec/ingress/0/from
  patched.spec.ingress[0].from = [{ ipBlock: { cidr: '192.0.2.10/32' } }, { ipBlock: { cidr: '192.0.2.11/32' } }];
  t.ok(allowed(patched, 'https', apiServer));
  t.ok(allowed(patched, 'https', { ip: '192.0.2.11' }));
  t.notOk(allowed(patched, 'https', elsewhere));
  t.notOk(allowed(patched, 'https', anyPod), 'other pods no longer reach /mutate');
  t.ok(allowed(patched, 'metrics', scraper), 'metrics unchanged');
  t.equal(policy.spec.ingress[0].ports[0].port, 'https', 'the rule the patch path names is the webhook port');
  const doc = readFileSync(path.join(repoRoot, 'docs', 'install.md'), 'utf8');
  t.match(doc, /path: \/spec\/ingress\/0\/from/, 'the docs patch the same rule');
});
