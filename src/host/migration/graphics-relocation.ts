// Perform's first step on the source: SPICE clients are told where the destination's
// graphics listen (client_migrate_info), so they follow the guest instead of dropping.
import { parseDomainXml } from '../../domain/index.js';
import type { MigrationCookie } from '../../migration/cookie.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';

/** SPICE clients follow the guest when told where the destination listens; a failure costs them a reconnect only. */
export async function relocateGraphics(rt: HostRuntime, dom: RunningDomain, cookie: MigrationCookie | undefined): Promise<void> {
  const g = cookie?.graphics;
  if (!g || g.type !== 'spice') return;
  if (!parseDomainXml(dom.domainXml).devices.graphics.some((x) => x.type === 'spice')) return;
  const hostname = g.listen === '0.0.0.0' || g.listen === '::' ? cookie.hostname : g.listen;
  const args: Record<string, unknown> = { protocol: 'spice', hostname, port: g.port };
  if (g.tlsPort !== undefined && g.tlsPort > 0) args['tls-port'] = g.tlsPort;
  if (g.tlsSubject !== undefined) args['cert-subject'] = g.tlsSubject;
  try {
    await dom.qmp.execute('client_migrate_info', args);
    rt.log.info({ domain: dom.name, to: `${hostname}:${g.port}` }, 'SPICE clients told where the destination listens');
  } catch (err) {
    rt.log.warn({ domain: dom.name, err: String(err) }, 'graphics client relocation failed; clients will reconnect by hand');
  }
}
