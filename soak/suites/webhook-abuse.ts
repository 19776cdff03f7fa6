import type { Report } from '../lib/report.js';
export async function webhookAbuseSuite(report: Report): Promise<void> {
  report.add('webhook-abuse', false, 'not written yet');
}
