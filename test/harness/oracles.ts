// Where the Istio oracles (injection goldens, iptables goldens) are: beside the repository in
// ../shared/oracles/istio, or wherever ASM_ORACLES points. The one lookup of the TypeScript side; the Go side's is
// cni/internal/testenv.OracleDir.
import { resolve } from 'node:path';
import { repoRoot } from './toolchain.js';

export const oraclesDir = process.env.ASM_ORACLES ?? resolve(repoRoot, '../shared/oracles/istio');
