// A tiny fake Kubernetes API over plain HTTP on loopback: pod list (field selector), pod delete (uid precondition),
// Event create, SelfSubjectReview (401 for a token in `rejectedTokens`) and TokenRequest. Enough for the repair controller and the plugin's token, checked through @kubernetes/client-node.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';

export interface FakeApi {
  url: string;
  pods: V1Pod[];
  requests: Array<{ method: string; path: string; auth: string | undefined; body: unknown }>;
  /** Status to answer token requests with (200 by default). */
  tokenStatus: number;
  tokenCount: number;
  events: Array<Record<string, any>>;
  rejectedTokens: Set<string>;
  close(): Promise<void>;
}

const body = (req: IncomingMessage) =>
  new Promise<unknown>((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      resolve(text ? JSON.parse(text) : undefined);
    });
  });

export async function startFakeApi(): Promise<FakeApi> {
  const api: FakeApi = {
    url: '',
    pods: [],
    requests: [],
    tokenStatus: 200,
    tokenCount: 0,
    events: [],
    rejectedTokens: new Set(),
    close: async () => {},
  };
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- a test server: a throw fails the test run
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const payload = await body(req);
    api.requests.push({
      method: req.method ?? '',
      path: `${url.pathname}${url.search}`,
      auth: req.headers.authorization,
      body: payload,
    });
    const json = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const status = (code: number, reason: string, message: string) =>
      json(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && url.pathname === '/api/v1/pods') {
      const sel = url.searchParams.get('fieldSelector') ?? '';
      const node = /^spec\.nodeName=(.+)$/.exec(sel)?.[1];
      const items = api.pods.filter((p) => node === undefined || p.spec?.nodeName === node);
      return json(200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items });
    }
    if (req.method === 'DELETE' && (m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname))) {
      const [, ns, name] = m;
      const pod = api.pods.find((p) => p.metadata?.namespace === ns && p.metadata?.name === name);
      if (!pod) return status(404, 'NotFound', `pods "${name}" not found`);
      const uid = (payload as { preconditions?: { uid?: string } } | undefined)?.preconditions?.uid;
      if (uid !== undefined && uid !== pod.metadata?.uid) return status(409, 'Conflict', 'Precondition failed: UID');
      api.pods = api.pods.filter((p) => p !== pod);
      return json(200, pod);
    }
    if (req.method === 'POST' && /^\/api\/v1\/namespaces\/[^/]+\/events$/.test(url.pathname)) {
      api.events.push(payload as Record<string, any>);
      return json(201, payload);
    }
    if (req.method === 'POST' && url.pathname === '/apis/authentication.k8s.io/v1/selfsubjectreviews') {
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (api.rejectedTokens.has(token)) return status(401, 'Unauthorized', 'Unauthorized');
      return json(201, { ...(payload as object), status: { userInfo: { username: 'plugin' } } });
    }
    if (
      req.method === 'POST' &&
      (m = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token$/.exec(url.pathname))
    ) {
      if (api.tokenStatus !== 200) return status(api.tokenStatus, 'Forbidden', 'cannot create serviceaccounts/token');
      api.tokenCount++;
      const spec = (payload as { spec?: { expirationSeconds?: number } }).spec ?? {};
      const exp = new Date(Date.now() + (spec.expirationSeconds ?? 3600) * 1000);
      return json(201, {
        kind: 'TokenRequest',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { name: m[2], namespace: m[1] },
        spec,
        status: { token: `plugin-token-${api.tokenCount}`, expirationTimestamp: exp.toISOString() },
      });
    }
    status(404, 'NotFound', `no route ${req.method} ${url.pathname}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return api;
}

/** A pod on `node` whose istio-validation init container is in the given state. */
export function pod(
  name: string,
  node: string,
  validation: Record<string, unknown> | null,
  extra: Partial<V1Pod> = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'shop',
      uid: `uid-${name}`,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'rs-1', controller: true }],
      ...extra.metadata,
    },
    spec: { nodeName: node, containers: [{ name: 'app' }], ...extra.spec },
    status:
      validation === null
        ? {}
        : {
            initContainerStatuses: [
              {
                name: 'istio-validation',
                image: 'x',
                imageID: '',
                ready: false,
                restartCount: 1,
                ...validation,
              },
            ],
          },
  };
}
