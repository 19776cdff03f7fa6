// Child process for the kill test: rewrites one file forever with alternating large contents, via writeFileAtomic.
import { writeFileAtomic } from '../../../src/installer/atomic.js';

const [target, size = '1048576'] = process.argv.slice(2);
if (target === undefined) {
  // run directly by a test runner given the whole directory: nothing to do
  process.stdout.write('1..0 # SKIP helper process of atomic.test.ts\n');
  process.exit(0);
}
const a = Buffer.alloc(Number(size), 'a');
const b = Buffer.alloc(Number(size), 'b');
let n = 0;
process.stdout.write('started\n');
for (;;) {
  await writeFileAtomic(target, n++ % 2 === 0 ? a : b, 0o600);
}
