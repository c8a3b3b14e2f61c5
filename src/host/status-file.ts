// Live status of a running domain, in the run directory, shaped like libvirt's
// <domstatus>: enough for a restarted worker to find its QEMU again.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import type { DomainState } from '../common/domain-types.js';
import { writeFileAtomic } from '../support/atomic-write.js';

export interface DomainStatus {
  state: DomainState;
  reason: string;
  pid: number;
  qmpSocket: string;
  memoryBackingFile?: string;
  /** Identifies the request that started this QEMU, so a retried start is recognised. */
  startRequestId?: string;
  /** A reboot was asked for (power button pressed): the guest's poweroff becomes a reset, even across a worker restart. */
  fakeReboot?: boolean;
  /** The live definition (formatted domain XML). */
  domainXml: string;
}

const ATTR_ESCAPES: Record<string, string> = { '&': '&amp;', "'": '&apos;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
const esc = (s: string): string => s.replace(/[&'<>"]/g, (c) => ATTR_ESCAPES[c]!);

export function statusPath(runDir: string, name: string): string {
  return join(runDir, `${name}.xml`);
}

export function formatStatus(s: DomainStatus): string {
  const opt = (k: string, v: string | undefined): string => (v === undefined ? '' : ` ${k}='${esc(v)}'`);
  return (
    `<domstatus state='${s.state}' reason='${esc(s.reason)}' pid='${s.pid}'${opt('startRequestId', s.startRequestId)}${s.fakeReboot ? ` fakeReboot='yes'` : ''}>\n` +
    `  <monitor path='${esc(s.qmpSocket)}' type='unix'/>\n` +
    (s.memoryBackingFile ? `  <memoryBacking path='${esc(s.memoryBackingFile)}'/>\n` : '') +
    `  <definition>\n${s.domainXml.trimEnd()}\n  </definition>\n` +
    `</domstatus>\n`
  );
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseAttributeValue: false,
  processEntities: true,
  htmlEntities: false,
  // The definition stays raw text: it is handed to the domain XML parser whole.
  stopNodes: ['domstatus.definition'],
});

export function parseStatus(xml: string): DomainStatus {
  const doc = parser.parse(xml) as { domstatus?: Record<string, unknown> };
  const root = doc.domstatus as
    | {
        state?: string;
        reason?: string;
        pid?: string;
        startRequestId?: string;
        fakeReboot?: string;
        monitor?: { path?: string };
        memoryBacking?: { path?: string };
        definition?: string;
      }
    | undefined;
  if (!root?.state || !root.pid || !root.monitor?.path || typeof root.definition !== 'string') {
    throw new Error('status file is incomplete');
  }
  const pid = Number(root.pid);
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`status file has a bad pid ${root.pid}`);
  return {
    state: root.state as DomainState,
    reason: root.reason ?? 'unknown',
    pid,
    qmpSocket: root.monitor.path,
    memoryBackingFile: root.memoryBacking?.path,
    startRequestId: root.startRequestId,
    fakeReboot: root.fakeReboot === 'yes' ? true : undefined,
    domainXml: root.definition.trim(),
  };
}

export function writeStatus(runDir: string, name: string, s: DomainStatus): void {
  writeFileAtomic(statusPath(runDir, name), formatStatus(s));
}

export function removeStatus(runDir: string, name: string): void {
  rmSync(statusPath(runDir, name), { force: true });
}

/** Names of domains that have a status file, whatever state it is in. */
export function listStatusNames(runDir: string): string[] {
  return readdirSync(runDir)
    .filter((f) => f.endsWith('.xml'))
    .map((f) => f.slice(0, -'.xml'.length));
}

export function readStatus(runDir: string, name: string): DomainStatus {
  return parseStatus(readFileSync(statusPath(runDir, name), 'utf8'));
}
