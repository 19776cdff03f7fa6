import type { Report } from '../lib/report.js';
export async function installerSuite(report: Report): Promise<void> {
  report.add('installer', false, 'not written yet');
}
