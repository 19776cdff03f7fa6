// Shared helpers of the installer tests: temp dirs, oracle files, a quiet logger, options for a temp "node".
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import type { InstallerOptions } from '../../../src/installer/options.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ORACLE_DIR = path.join(repoRoot, 'test', 'unit', 'installer', 'oracle');
export const oracle = (name: string): string => readFileSync(path.join(ORACLE_DIR, name), 'utf8');
export const hasOracles = (): boolean => existsSync(path.join(ORACLE_DIR, 'list.conflist'));

/** The real plugin binary when built, else a stand-in file. */
export const REAL_BINARY = path.join(repoRoot, 'dist', 'cni', 'asm-cni');

export function tempDir(t: Test, prefix = 'asm-cni-inst-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A logger that keeps its JSON lines in memory for assertions. */
export function memoryLogger(): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export interface Node {
  root: string;
  netDir: string;
  binDir: string;
  saDir: string;
  confDir: string;
  options: InstallerOptions;
}

/** A fake node: net dir, bin dir, service-account dir with token and CA, a plugin binary. */
export async function fakeNode(t: Test, overrides: Partial<InstallerOptions> = {}): Promise<Node> {
  const root = tempDir(t);
  const netDir = path.join(root, 'net.d');
  const binDir = path.join(root, 'bin');
  const saDir = path.join(root, 'sa');
  const confDir = path.join(root, 'config');
  for (const d of [netDir, binDir, saDir, confDir]) await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(saDir, 'token'), 'token-one');
  await fs.writeFile(path.join(saDir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nMIIfake\n-----END CERTIFICATE-----\n');
  await fs.writeFile(path.join(saDir, 'namespace'), 'asm-cni');
  let pluginBinary = REAL_BINARY;
  if (!existsSync(REAL_BINARY)) {
    pluginBinary = path.join(root, 'asm-cni-standin');
    await fs.writeFile(pluginBinary, '#!/bin/sh\necho stand-in plugin\n', { mode: 0o755 });
  }
  const options: InstallerOptions = {
    netDir,
    binDir,
    hostNetDir: '/etc/cni/net.d',
    pluginBinary,
    configPath: null,
    saDir,
    kubeconfigPath: path.join(netDir, 'asm-cni-kubeconfig'),
    cniConfName: null,
    readinessPort: 0,
    apiServer: 'https://10.96.0.1:443',
    pluginServiceAccount: null,
    namespace: 'asm-cni',
    tokenTtlSeconds: 3600,
    nodeName: null,
    pluginLogFile: '/var/log/asm-cni.log',
    pluginApiTimeout: '5s',
    pluginIptablesBackend: 'auto',
    skipTlsVerify: false,
    resyncMs: 5000,
    repairIntervalMs: 30000,
    uninstallWait: false,
    ...overrides,
  };
  return { root, netDir, binDir, saDir, confDir, options };
}

export { poll, sleep } from '../../harness/wait.js';
