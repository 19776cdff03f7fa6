// A TCP relay on loopback in front of the API server, for the node agents (installer and plugin) only: cutting it
// makes the API server unreachable for them while the kubelet, which talks to the API server directly, carries on.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface Relay {
  readonly port: number;
  /** New connections are reset and open ones dropped until unblock(). */
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number, targetHost = '127.0.0.1'): Promise<Relay> {
  let blocked = false;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (blocked) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('relay: no port');
  return {
    port: address.port,
    block() {
      blocked = true;
      for (const s of open) s.destroy();
    },
    unblock() {
      blocked = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
