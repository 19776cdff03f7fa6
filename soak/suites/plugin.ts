import type { Report } from '../lib/report.js';
export async function pluginSuite(report: Report): Promise<void> {
  report.add('plugin', false, 'not written yet');
}
