// The shared config file (the ConfigMap the webhook and installer read), replaced atomically as a ConfigMap update is.
import { renameSync, writeFileSync } from 'node:fs';

export function configYaml(excludeNamespaces: string[], extra = ''): string {
  return `excludeNamespaces:\n${excludeNamespaces.map((n) => `  - ${n}`).join('\n')}\ninvalidAnnotations: deny\ncniProvider: default\nlogLevel: info\n${extra}`;
}

/** Not a valid config: an unknown enum value and broken YAML (the server must keep the last good one). */
export const INVALID_CONFIG = 'excludeNamespaces: [kube-system, istio-system\ninvalidAnnotations: sometimes\n\t- :';

export function replaceFile(path: string, text: string): void {
  const tmp = `${path}.soak-tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
