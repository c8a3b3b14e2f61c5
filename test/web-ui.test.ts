// The Temporal Web UI, driven in Debian's headless Chromium: a vmferry job is
// findable by our search attributes and its steps are shown with their summaries.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { jobWorkflowId } from '../src/common/job-types.js';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { startMigration } from './helpers/migration.js';

const cluster = new TestCluster();
const HOST = 'ui-a';
const HOST_B = 'ui-b';
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');
let browser: Browser;

beforeAll(async () => {
  await cluster.connect();
  const ports = (min: number): Record<string, string> => ({ VMFERRY_HOST_MIGRATION_PORT_MIN: String(min), VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7) });
  await Promise.all([cluster.startHost(HOST, ports(49264)), cluster.startHost(HOST_B, ports(49272)), cluster.startControl()]);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await cluster.op(HOST, { op: 'destroy', name: 'ui1' }).catch(() => undefined);
  await cluster.op(HOST_B, { op: 'destroy', name: 'ui-m1' }).catch(() => undefined);
  await cluster.op(HOST_B, { op: 'undefine', name: 'ui-m1' }).catch(() => undefined);
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

  it('finds a finished migration by DomainName and JobType and shows its phases, each with its host', async () => {
    const uuid = randomUUID();
    await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'ui-m1', uuid }) });
    await cluster.op(HOST, { op: 'start', name: 'ui-m1' });
    const migration = await startMigration(cluster.client, {
      domain: 'ui-m1',
      domainUuid: uuid,
      sourceHost: HOST,
      destinationHost: HOST_B,
      flags: ['live', 'persist-dest', 'undefine-source'],
    });
    expect(await migration.result()).toMatchObject({ protocol: 3, destination: { host: HOST_B, state: 'running' } });

    const page = await browser.newPage({ viewport: { width: 1400, height: 1400 } });
    const query = encodeURIComponent('DomainName="ui-m1" AND JobType="migrateOut"');
    await page.goto(`${inject('temporalUiUrl')}/namespaces/default/workflows?query=${query}`);
    const row = page.getByRole('link', { name: jobWorkflowId(uuid) }).first();
    await row.waitFor({ timeout: 30_000 });
    await row.click();
    // Each protocol step is an activity whose summary names what it does and on which host.
    for (const summary of [
      "Begin: check 'ui-m1' and take the job on ui-a",
      "v3 Prepare: start 'ui-m1' paused with -incoming on ui-b",
      "v3 Perform: migrate 'ui-m1' from ui-a to tcp:",
      "v3 Finish: start 'ui-m1' on ui-b",
      "v3 Confirm: stop 'ui-m1' on ui-a",
    ]) {
      await page.getByText(summary).first().waitFor({ timeout: 30_000 });
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'web-ui-migration.png'), fullPage: true });
    for (const activity of ['migrateBegin', 'migratePrepare', 'migratePerform', 'migrateFinish', 'migrateConfirm']) {
      expect(await page.getByText(activity).count(), activity).toBeGreaterThan(0);
    }
    await page.close();
  });
});
