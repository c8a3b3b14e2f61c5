// Payload encryption (VMFERRY_PAYLOAD_KEY_FILE): the codec on its own, then a
// cluster whose workers and client share a key, where a guest with a VNC password
// is defined, migrated, saved and restored, and the raw workflow histories (as the
// server stores them) are searched for the password's bytes.
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type WorkflowHandle } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AesGcmPayloadCodec, ENCODING, keyId } from '../src/codec/aes-gcm-codec.js';
import { dataConverterFor, PayloadKeyError, readPayloadKey } from '../src/codec/key-file.js';
import { loadCliConfig } from '../src/cli/cli-config.js';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainOperation, DomainOperationResult } from '../src/common/domain-types.js';
import type { RestoreResult } from '../src/common/save-types.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, startMigration } from './helpers/migration.js';
import { startJob } from './helpers/save.js';
import { jsonOf, startVmferry, vmferry } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const A = 'cl-c-a';
const B = 'cl-c-b';
const SECRET = `clpw${randomBytes(6).toString('hex')}`;
const keyFile = join(cluster.root, 'payload.key');
const KEY_ENV = { VMFERRY_PAYLOAD_KEY_FILE: keyFile };
const runs: { workflowId: string; runId: string; what: string }[] = [];
let seq = 0;

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const json = (v: unknown): Payload => ({ metadata: { encoding: bytes('json/plain') }, data: bytes(JSON.stringify(v)) });

/** Where `needle` occurs in a (protobuf) object tree: byte fields and strings alike. */
function occurrences(node: unknown, needle: string, path = ''): string[] {
  if (node instanceof Uint8Array) return Buffer.from(node).includes(needle) ? [path] : [];
  if (typeof node === 'string') return node.includes(needle) ? [path] : [];
  if (Array.isArray(node)) return node.flatMap((v, i) => occurrences(v, needle, `${path}[${i}]`));
  if (node !== null && typeof node === 'object') return Object.entries(node).flatMap(([k, v]) => occurrences(v, needle, `${path}.${k}`));
  return [];
}

/** The history exactly as the server returns it over gRPC, before any data converter. */
async function rawHistory(client: Client, workflowId: string, runId: string): Promise<unknown[]> {
  const events: unknown[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId, runId }, nextPageToken });
    events.push(...(page.history?.events ?? []));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return events;
}

async function track(handle: WorkflowHandle, what: string): Promise<void> {
  runs.push({ workflowId: handle.workflowId, runId: (await handle.describe()).runId, what });
}

/** Starts with `client`, reads the result through `reader` (results are encrypted by the worker whoever started it). */
async function op(client: Client, host: string, operation: DomainOperation, what: string, reader: Client = client): Promise<DomainOperationResult> {
  const handle = await client.workflow.start('domainOperation', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: `cl-codec-${process.pid}-${seq++}`,
    args: [{ host, operation }],
  });
  runs.push({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId, what });
  return (await reader.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).result()) as DomainOperationResult;
}

const vnc = `\n    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='${SECRET}'/>`;

describe('AES-256-GCM payload codec', () => {
  const key = randomBytes(32);
  const codec = new AesGcmPayloadCodec([key]);

  it('round-trips metadata and data, and the ciphertext shows neither', async () => {
    const p = json({ xml: `<graphics passwd='${SECRET}'/>` });
    const [sealed] = await codec.encode([p]);
    expect(new TextDecoder().decode(sealed!.metadata!.encoding!)).toBe(ENCODING);
    expect(occurrences(sealed, SECRET)).toEqual([]);
    expect(occurrences(sealed, 'json/plain')).toEqual([]);
    expect(await codec.decode([sealed!])).toEqual([p]);
  });

  it('passes payloads without its encoding through (Temporal CLI input), and refuses tampered data and unknown keys', async () => {
    const plain = json('hello');
    expect(await codec.decode([plain])).toEqual([plain]);
    const [sealed] = await codec.encode([json(1)]);
    const tampered = { ...sealed!, data: Uint8Array.from(sealed!.data!, (b, i) => (i === 20 ? b ^ 1 : b)) };
    await expect(codec.decode([tampered])).rejects.toThrow(/auth/i);
    const other = new AesGcmPayloadCodec([randomBytes(32)]);
    await expect(other.decode([sealed!])).rejects.toThrow(new RegExp(`encrypted with key ${keyId(key)}`));
    // Rotation: the new key first, the old one still decrypts.
    expect(await new AesGcmPayloadCodec([randomBytes(32), key]).decode([sealed!])).toEqual([json(1)]);
  });

  it('reads 32-byte keys (raw or hex) and refuses short keys and world-readable files', () => {
    const raw = join(cluster.root, 'raw.key');
    writeFileSync(raw, key, { mode: 0o600 });
    expect(readPayloadKey(raw)).toEqual(key);
    const hex = join(cluster.root, 'hex.key');
    writeFileSync(hex, `${key.toString('hex')}\n`, { mode: 0o600 });
    expect(readPayloadKey(hex)).toEqual(key);
    writeFileSync(hex, key.subarray(0, 31), { mode: 0o600 });
    expect(() => readPayloadKey(hex)).toThrow(/must hold 32 bytes/);
    chmodSync(raw, 0o644);
    expect(() => readPayloadKey(raw)).toThrow(PayloadKeyError);
    expect(dataConverterFor(loadCliConfig({}).payloadKeyFiles)).toBeUndefined();
  });

  it('vmferry codec-server encodes and decodes over HTTP, with CORS for the Web UI origin only', async () => {
    const file = join(cluster.root, 'server.key');
    writeFileSync(file, key, { mode: 0o600 });
    const server = startVmferry({ address: cluster.address, host: A, env: { VMFERRY_PAYLOAD_KEY_FILE: file } }, ['codec-server', '--listen', '127.0.0.1:0']);
    let stderr = '';
    server.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const url = await waitFor('the codec server to listen', () => /listening on (http:\/\/\S+)/.exec(stderr)?.[1], { timeoutMs: 15_000, intervalMs: 50 });
      const post = async (op: string, payloads: unknown): Promise<{ payloads: { metadata: Record<string, string>; data: string }[] }> => {
        const r = await fetch(`${url}/${op}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-namespace': 'default' },
          body: JSON.stringify({ payloads }),
        });
        expect(r.status).toBe(200);
        return (await r.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      };
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      const plain = { metadata: { encoding: b64('json/plain') }, data: b64(JSON.stringify({ passwd: SECRET })) };
      const sealed = await post('encode', [plain]);
      expect(Buffer.from(sealed.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe(ENCODING);
      expect(Buffer.from(sealed.payloads[0]!.data, 'base64').includes(SECRET)).toBe(false);
      expect((await post('decode', sealed.payloads)).payloads).toEqual([plain]);
      // What the server sealed, this process's codec with the same key opens.
      const [opened] = await codec.decode([
        { metadata: { encoding: bytes(ENCODING), 'vmferry-key-id': bytes(keyId(key)) }, data: Buffer.from(sealed.payloads[0]!.data, 'base64') },
      ]);
      expect(new TextDecoder().decode(opened!.data!)).toContain(SECRET);

      const preflight = (origin: string): Promise<Response> =>
        fetch(`${url}/decode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
      expect((await preflight('http://localhost:8233')).headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
      expect((await preflight('http://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      server.child.kill('SIGTERM');
    }
    expect((await server.done).code).toBe(0);
  });
});

describe('a cluster with payload encryption', () => {
  beforeAll(async () => {
    writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    await cluster.connect(dataConverterFor(loadCliConfig(KEY_ENV).payloadKeyFiles));
    await Promise.all([cluster.startHost(A, KEY_ENV), cluster.startHost(B, KEY_ENV), cluster.startControl(KEY_ENV)]);
  });

  afterAll(async () => {
    await cluster.removeAllDomains([A, B]);
    await cluster.stop();
  });

  it('defines, migrates, saves and restores a guest with a VNC password; no history holds the password', async () => {
    const client = cluster.client;
    await op(client, A, { op: 'define', xml: guestXml({ name: 'cl-c1', memoryMiB: 64, extraDevices: vnc }) }, 'define');
    const g = domainOf(await op(client, A, { op: 'start', name: 'cl-c1' }, 'start'));

    const migration = await startMigration(client, {
      domain: 'cl-c1',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live', 'persist-dest', 'undefine-source'],
    });
    await track(migration, 'migrate');
    expect(await migration.result()).toMatchObject({ destination: { state: 'running' }, persistent: true });

    const path = join(cluster.root, 'cl-c1.img');
    const save = await startJob(client, 'save', g.uuid, { host: B, name: 'cl-c1', path });
    await track(save, 'save');
    await save.result();
    const restore = await startJob(client, 'restore', g.uuid, { host: B, path });
    await track(restore, 'restore');
    expect((await restore.result()) as RestoreResult).toMatchObject({ domain: { name: 'cl-c1', state: 'running' } });
    // The password reached QEMU's definition on the destination (dumpxml with security info, through the codec too).
    const xml = await op(client, B, { op: 'dumpxml', name: 'cl-c1', securityInfo: true }, 'dumpxml --security-info');
    expect(JSON.stringify(xml)).toContain(SECRET);

    // The CLI with the same key reads results; the same history is searched below.
    const listed = await vmferry({ address: cluster.address, host: B, env: KEY_ENV }, 'list', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.stringify(jsonOf(listed))).toContain('cl-c1');

    let encrypted = 0;
    for (const r of runs) {
      const events = await rawHistory(client, r.workflowId, r.runId);
      expect(events.length, r.what).toBeGreaterThan(3);
      expect(occurrences(events, SECRET), `${r.what}: the password in history`).toEqual([]);
      encrypted += occurrences(events, ENCODING).length;
    }
    expect(encrypted).toBeGreaterThan(runs.length * 2);
  });

  it('a client without the codec (like the Temporal CLI) still starts workflows, its input passing through; then the password is in history, and the search finds it', async () => {
    const plain = new Client({ connection: cluster.connection! });
    const before = runs.length;
    await op(plain, A, { op: 'define', xml: guestXml({ name: 'cl-c2', memoryMiB: 64, extraDevices: vnc }) }, 'define without codec', cluster.client);
    const events = await rawHistory(cluster.client, runs[before]!.workflowId, runs[before]!.runId);
    expect(occurrences(events, SECRET).length).toBeGreaterThan(0);
    await op(cluster.client, A, { op: 'undefine', name: 'cl-c2' }, 'undefine');
  });
});
