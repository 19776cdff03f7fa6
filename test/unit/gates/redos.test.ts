// The ReDoS gate (scripts/gates.sh runs ESLint with eslint.config.js): the product's files get recheck's analysis, and
// it refuses the quadratic status-annotation pattern issue 11 found, which eslint-plugin-regexp's rules let through.
import { ESLint } from 'eslint';
import path from 'node:path';
import t from 'tap';
import tseslint from 'typescript-eslint';
import redos from 'eslint-plugin-redos';
import { repoRoot } from '../../harness/toolchain.js';

const quadratic = 'export const f = (s: string): boolean => /"initContainers"\\s*:\\s*\\[[^\\]]*\\]/.test(s);\n';
const linear = 'export const f = (s: string): boolean => /^[0-9]{1,5}$/.test(s);\n';

t.test("the project's config runs recheck on every file of src/", async (t) => {
  const eslint = new ESLint({ cwd: repoRoot });
  const config = (await eslint.calculateConfigForFile(path.join(repoRoot, 'src/webhook/core/rewrite.ts'))) as {
    rules: Record<string, unknown>;
  };
  t.same(config.rules['redos/no-vulnerable'], [2], 'redos/no-vulnerable is an error for the product');
});

t.test('recheck refuses the quadratic pattern and accepts a linear one', async (t) => {
  const eslint = new ESLint({
    cwd: repoRoot,
    overrideConfigFile: true,
    overrideConfig: [
      {
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser },
        plugins: { redos },
        rules: { 'redos/no-vulnerable': 'error' },
      },
    ],
  });
  const [bad] = await eslint.lintText(quadratic, { filePath: 'src/example.ts' });
  t.match(bad!.messages, [{ ruleId: 'redos/no-vulnerable' }], 'the issue-11 pattern is refused');
  const [good] = await eslint.lintText(linear, { filePath: 'src/example.ts' });
  t.same(good!.messages, [], 'a linear pattern passes');
});
