// The destination QEMU's side of Prepare: its guest RAM touched before the
// stream arrives, its listening socket on a port from the host's range, and
// where graphics clients should reconnect.
import { isVmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/index.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';
import type { CookieGraphics } from '../../migration/cookie.js';
import type { PortAllocator } from '../../migration/port-allocator.js';
import { formatMigrationUri } from '../../migration/uri.js';
import { startIncomingMigration } from '../../qemu/migration-engine.js';

const PREALLOC_MAX_KIB = 8 * 1024 * 1024;

/**
 * Touches the destination's guest RAM before the stream arrives: QEMU faulting it
 * in page by page as data lands is most of a migration's time on a cold host.
 */
export async function preallocate(rt: HostRuntime, dom: RunningDomain, def: DomainDef): Promise<void> {
  // Measured (bench/migrate.ts): a 256 MiB random-RAM migration's QEMU time halves, its downtime thirds.
  // Large guests skip it: Prepare must stay well inside its deadline, and the RAM is committed up front.
  if (def.memoryBacking?.sourceType !== 'file' || def.memoryKiB > PREALLOC_MAX_KIB) return;
  const t0 = Date.now();
  try {
    // pc.ram is the id command-line.ts gives a file memory backend.
    await dom.qmp.execute('qom-set', { path: '/objects/pc.ram', property: 'prealloc-threads', value: 2 });
    await dom.qmp.execute('qom-set', { path: '/objects/pc.ram', property: 'prealloc', value: true }, { timeoutMs: 120_000 });
    rt.log.info({ domain: dom.name, ms: Date.now() - t0 }, 'destination RAM preallocated');
  } catch (err) {
    rt.log.warn({ domain: dom.name, err: String(err) }, 'destination RAM not preallocated; QEMU faults it in during the stream');
  }
}

export async function graphicsFor(dom: RunningDomain, def: DomainDef): Promise<CookieGraphics | undefined> {
  const g = def.devices.graphics.find((x) => x.type === 'spice' || x.type === 'vnc');
  if (!g) return undefined;
  const listen = g.listens.find((l) => l.type === 'address')?.address ?? g.listen ?? '127.0.0.1';
  if (g.type === 'spice') {
    const s = await dom.qmp.execute<{ enabled?: boolean; port?: number; 'tls-port'?: number }>('query-spice');
    if (!s.enabled || s.port === undefined) return undefined;
    return { type: 'spice', port: s.port, tlsPort: s['tls-port'] ?? -1, listen };
  }
  const v = await dom.qmp.execute<{ enabled?: boolean; service?: string }>('query-vnc');
  if (!v.enabled || v.service === undefined) return undefined;
  return { type: 'vnc', port: Number(v.service), listen };
}

/** `migrate-incoming` on a port from the range; a port someone grabbed since the probe costs one more try. */
export async function listenIncoming(
  rt: HostRuntime,
  ports: PortAllocator,
  dom: RunningDomain,
  jobId: string,
  override: { host: string; port: number } | undefined,
): Promise<{ host: string; port: number }> {
  const host = override?.host ?? rt.config.migration.address;
  for (let attempt = 1; ; attempt++) {
    const port = override?.port ?? (await ports.acquire(jobId));
    try {
      await startIncomingMigration(dom.qmp, formatMigrationUri({ transport: 'tcp', host, port }));
      return { host, port };
    } catch (err) {
      const inUse = isVmError(err) && /in use/i.test(err.message);
      if (override || !inUse || attempt >= 5) throw err;
      // Someone bound it since the probe; the next search probes it again and skips it.
      ports.releaseOwner(jobId);
    }
  }
}
