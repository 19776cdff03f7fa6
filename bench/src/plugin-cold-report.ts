// The "plugin cold path" table of bench/results.md: the plugin's ADD, its prototypes and what a cold process pays,
// beside the floor of the same run (docs/bench.md, "The plugin's cold path", reads it).

const f = (v: number | null | undefined, digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : String(Number(v.toFixed(digits)));

const pct = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : `${Math.round(v * 100)} %`;

/** The table, or null when the run has no cold-path comparison (floor only, or another build of the plugin). */
export function coldPathTable(cold: any, resumedAdds?: { resumed: number; of: number } | null): string | null {
  if (!cold?.steps) return null;
  const m = (k: string): string => f(cold.steps[k]?.p50);
  const c = (k: string): string => f(cold.cpuMs?.[k]?.p50);
  const saved = (label: string, k: string): string[] => [
    `Saved by ${label}: median of the per-round differences (share of rounds where it was faster)`,
    `${f(cold.savedMs?.[k])} (${pct(cold.fasterShare?.[k])})`,
    f(cold.savedCpuMs?.[k]),
    '',
  ];
  const rows: string[][] = [
    ['Floor: GET on a fresh connection + the restores, in the warm driver', m('floor'), '–', '1'],
    ['Plugin ADD as shipped (resumes the TLS session of the previous call)', m('add'), c('add'), f(cold.addRatio)],
    [
      'Plugin ADD without a session to resume (full TLS handshake, as after a reboot)',
      m('addFullHandshake'),
      c('addFullHandshake'),
      f(cold.addFullHandshakeRatio),
    ],
    saved('resuming the session', 'resumeAdd'),
    [
      "ADDs of the whole run that resumed a session (the plugin's `tls_resumed`; the full-handshake ADDs above delete the session on purpose)",
      resumedAdds ? `${resumedAdds.resumed} of ${resumedAdds.of}` : '–',
      '',
      '',
    ],
    [
      'Plugin ADD against an RSA-2048 API server: resuming the session / without a session',
      `${m('addRSA')} / ${m('addFullHandshakeRSA')}`,
      `${c('addRSA')} / ${c('addFullHandshakeRSA')}`,
      '',
    ],
    saved('resuming the session, RSA-2048 API server', 'resumeAddRSA'),
    [
      'Plugin ADD with the node-agent prototype (own GET as fallback)',
      m('addAgent'),
      c('addAgent'),
      f(cold.addAgentRatio),
    ],
    saved('the agent', 'agentAdd'),
    [
      'Process start: exec of /bin/true / a Go program that only exits / `asm-cni version`',
      `${m('true')} / ${m('goStart')} / ${m('version')}`,
      `${c('true')} / ${c('goStart')} / ${c('version')}`,
      '',
    ],
    ['Package init before main, `asm-cni version` (sum of GODEBUG=inittrace=1 clocks)', f(cold.initMs?.p50), '', ''],
    [
      'Pod lookup in a cold process, full handshake: P-256 / RSA-2048 API server',
      `${f(cold.lookupMs?.get)} / ${f(cold.lookupMs?.getRSA)}`,
      '',
      '',
    ],
    ["Pod lookup in a cold process, via the agent's unix socket", f(cold.lookupMs?.agent), '', ''],
  ];
  const head = [
    `Plugin cold path (${cold.pods} rounds, steps in rotating order)`,
    'median (ms)',
    'CPU time (ms)',
    'ratio to the floor',
  ];
  return [head, ['---', '---:', '---:', '---:'], ...rows].map((c) => `| ${c.join(' | ')} |`).join('\n');
}
