// The shared vector files are generated (test/unit/webhook-core/fixtures/gen-*.mjs): each generator, run without
// --write, checks that the committed file is exactly what its source writes. Run here so that a hand edit of
// test/vectors/*.json, or a generator change without --write, fails the unit tier.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './fixtures/helpers.js';

for (const gen of ['gen-selection-vectors.mjs', 'gen-annotation-vectors.mjs']) {
  t.test(`${gen} --check: the committed vectors are what it generates`, async (t) => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'test/unit/webhook-core/fixtures', gen)], {
      encoding: 'utf8',
    });
    t.equal(r.status, 0, `${gen} exits 0: ${r.stdout}${r.stderr}`);
    t.match(r.stdout, /^ok 1 - /m);
  });
}
