// The Temporal Web UI, driven in Debian's headless Chromium: a vmferry job is
// findable by our search attributes and its steps are shown with their summaries.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';

const cluster = new TestCluster();
const HOST = 'ui-a';
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');
let browser: Browser;

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await cluster.op(HOST, { op: 'destroy', name: 'ui1' }).catch(() => undefined);
  await cluster.stop();
});

describe('Temporal Web UI', () => {
  it('finds a job by DomainName and shows its steps with summaries', async () => {
    await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'ui1' }) });
    await cluster.op(HOST, { op: 'start', name: 'ui1' });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const ui = inject('temporalUiUrl');
    const query = encodeURIComponent(`DomainName="ui1" AND JobType="domain-start"`);
    await page.goto(`${ui}/namespaces/default/workflows?query=${query}`);
    const row = page.getByRole('link', { name: /test-op-ui-a-start/ }).first();
    await row.waitFor({ timeout: 30_000 });
    await row.click();
    // The history shows the host activity with the summary the workflow gave it.
    await page.getByText("start 'ui1' on ui-a").first().waitFor({ timeout: 30_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'web-ui-domain-start.png'), fullPage: true });
    expect(await page.getByText('startDomain').count()).toBeGreaterThan(0);
    await page.close();
  });
});
