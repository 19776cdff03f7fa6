import type { Report } from '../lib/report.js';
export async function webhookTlsSuite(report: Report): Promise<void> {
  report.add('webhook-tls', false, 'not written yet');
}
