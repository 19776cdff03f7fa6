// The bench's CPU waterfall rows (bench/src/waterfall.ts): in the documented order whatever order the measurements
// came in, each the median of its rounds, each delta against the step before it.
import t from 'tap';
import { WATERFALL, waterfallRows, type StepMeasure } from '../../../bench/src/waterfall.js';

const m = (step: StepMeasure['step'], rounds: number[], errors = 0): StepMeasure => ({
  step,
  rounds,
  reviews: rounds.length * 1000,
  errors,
});

t.test(
  'rows follow the waterfall order; each is the median of its rounds, its delta against the row before',
  async (t) => {
    const rows = waterfallRows([
      m('shipped', [130, 129, 900]),
      m('floor', [50, 40, 60]),
      m('fastify', [70, 71, 69]),
      m('flags', [55, 54, 56], 2),
    ]);
    t.same(
      rows.map((r) => [r.step, r.cpuUsPerReview, r.deltaUs, r.errors]),
      [
        ['floor', 50, 50, 0],
        ['flags', 55, 5, 2],
        ['fastify', 70, 15, 0],
        ['shipped', 130, 60, 0],
      ],
      'a missing step is left out and the next delta spans the gap; one disturbed round does not move the median',
    );
    t.same(rows[3]!.roundsUs, [130, 129, 900], 'every round is kept');
    t.equal(rows[0]!.adds, WATERFALL[0]!.adds);
  },
);

t.test('an even number of rounds takes the lower middle; a step without rounds is left out', async (t) => {
  const rows = waterfallRows([m('floor', [40, 10, 30, 20]), m('admit', [])]);
  t.same(
    rows.map((r) => [r.step, r.cpuUsPerReview]),
    [['floor', 20]],
  );
});

t.test('the steps are the documented ones, floor first and the shipped webhook last', async (t) => {
  const steps = WATERFALL.map((w) => w.step);
  t.equal(steps[0], 'floor');
  t.equal(steps[steps.length - 1], 'shipped');
  t.equal(new Set(steps).size, steps.length, 'no step twice');
});
