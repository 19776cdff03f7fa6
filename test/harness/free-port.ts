// Loopback helpers shared by the TypeScript harnesses (e2e, soak).
import { createServer } from 'node:net';

/** A free loopback TCP port (bound and released; the short race is acceptable for a test harness). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
