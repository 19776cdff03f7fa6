// The open-loop pacing bench and soak share: how many requests it offers, their due times, an early stop, and waiting
// for (or giving up on) requests still in flight. No assertion depends on how fast the machine is.
import t from 'tap';
import { openLoop } from '../../harness/open-loop.js';

t.test('offers round(rate × seconds) requests, due at uniform intervals, in order', async (t) => {
  const due: bigint[] = [];
  const order: number[] = [];
  const r = await openLoop({ rate: 2000, seconds: 0.05, tickMs: 0 }, (i, dueNs) => {
    order.push(i);
    due.push(dueNs);
  });
  t.equal(r.offered, 100);
  t.equal(r.settled, 100);
  t.same(
    order,
    Array.from({ length: 100 }, (_, i) => i),
  );
  // 2000/s: 500 µs apart, measured from the first request's due time.
  for (let i = 0; i < due.length; i++) t.equal(Number(due[i]! - due[0]!), i * 500_000, `request ${i}`);
});

t.test('a request is never started before it is due', async (t) => {
  let early = 0;
  await openLoop({ rate: 1000, seconds: 0.03, tickMs: 1 }, (_i, dueNs) => {
    if (process.hrtime.bigint() < dueNs) early++;
  });
  t.equal(early, 0);
});

t.test('resolves only once every started request has settled', async (t) => {
  let finished = 0;
  const r = await openLoop(
    { rate: 500, seconds: 0.02, tickMs: 0 },
    (i) =>
      new Promise<void>((resolve, reject) =>
        setTimeout(() => {
          finished++;
          if (i % 2) reject(new Error('a failed request settles too'));
          else resolve();
        }, 20),
      ),
  );
  t.equal(r.offered, 10);
  t.equal(finished, 10);
  t.equal(r.settled, 10);
});

t.test('stop ends the offering early', async (t) => {
  let started = 0;
  const r = await openLoop({ rate: 1000, seconds: 3600, tickMs: 2, stop: () => started >= 5 }, () => {
    started++;
  });
  t.ok(r.offered >= 5, `offered ${r.offered}`);
  t.ok(r.offered < 3_600_000);
});

t.test('settleMs gives up on requests that never settle', async (t) => {
  const r = await openLoop({ rate: 1000, seconds: 0.005, tickMs: 0, settleMs: 50 }, () => new Promise<void>(() => {}));
  t.equal(r.offered, 5);
  t.equal(r.settled, 0);
});
