// Raw TLS/TCP clients for abuse: they speak (or fail to speak) HTTP by hand, so they can trickle, stall, or send
// garbage, and they report what the server did: the status line it answered with, and when it closed the connection.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket, type ConnectionOptions } from 'node:tls';

export interface RawOutcome {
  /** HTTP status the server answered with, 0 when none */
  status: number;
  /** the server closed (or reset) the connection */
  closed: boolean;
  /** ms from connect to close, when closed */
  closedAfterMs?: number;
  error?: string;
}

export function tlsSocket(port: number, ca: string, extra: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...extra }, () => resolve(s));
    s.once('error', reject);
  });
}

export function tcpSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Watches a connected socket: records the first status line and when the connection ends. */
export function watch(s: Socket): { outcome: RawOutcome; done: Promise<RawOutcome>; answered: Promise<RawOutcome> } {
  const t0 = performance.now();
  const outcome: RawOutcome = { status: 0, closed: false };
  let head = '';
  let onAnswer: (o: RawOutcome) => void = () => undefined;
  const answered = new Promise<RawOutcome>((resolve) => (onAnswer = resolve));
  s.on('data', (c: Buffer) => {
    if (outcome.status === 0 && head.length < 256) {
      head += c.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) {
        outcome.status = Number(m[1]);
        onAnswer(outcome);
      }
    }
  });
  s.on('error', (e) => (outcome.error ??= (e as NodeJS.ErrnoException).code ?? e.message));
  const done = new Promise<RawOutcome>((resolve) => {
    s.once('close', () => {
      outcome.closed = true;
      outcome.closedAfterMs = Math.round(performance.now() - t0);
      resolve(outcome);
      onAnswer(outcome);
    });
  });
  return { outcome, done, answered };
}

/** Writes `data` unless the peer is gone (the server may answer and close before the body is through). */
export function writeSafe(s: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed || !s.writable) return resolve();
    s.write(data, () => resolve());
  });
}
