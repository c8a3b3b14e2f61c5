// virsh domif-setlink: a NIC's link up or down. On a running domain QEMU's
// set_link changes it and the live definition records it; on a domain that is
// not running the persistent definition changes. The interface is named by its
// host device (target dev) or its MAC, as virsh takes either.
import { ErrorType, vmError } from '../common/errors.js';
import { formatDomainXml, parseDomainXml, type DomainDef } from '../domain/index.js';
import type { LinkState } from '../domain/interface-model.js';
import { nicDeviceId } from '../qemu/devices/interface.js';
import type { DomainInfo } from '../common/domain-types.js';
import type { HostRuntime } from './host-runtime.js';

function findInterface(def: DomainDef, which: string): number {
  const key = which.toLowerCase();
  const list = def.devices.interfaces ?? [];
  const matches = list.flatMap((n, i) => (n.targetDev === which || n.mac === key ? [i] : []));
  if (matches.length === 0) throw vmError(ErrorType.OperationInvalid, `domain '${def.name}' has no interface '${which}'`, { domain: def.name });
  if (matches.length > 1) throw vmError(ErrorType.OperationInvalid, `'${which}' matches ${matches.length} interfaces of domain '${def.name}'`);
  return matches[0]!;
}

export async function setInterfaceLink(rt: HostRuntime, name: string, which: string, state: LinkState): Promise<DomainInfo> {
  if (state !== 'up' && state !== 'down') throw vmError(ErrorType.OperationInvalid, `link state must be 'up' or 'down', not '${String(state)}'`);
  const live = rt.getRunning(name);
  if (live === undefined) {
    const xml = rt.defs.read(name);
    if (xml === undefined) throw rt.notFound(name);
    await rt.locks.with(name, 'domif-setlink', async () => {
      const def = parseDomainXml(xml);
      def.devices.interfaces![findInterface(def, which)]!.linkState = state;
      rt.defs.write(name, formatDomainXml(def));
    });
    return rt.info(name);
  }
  return await rt.locks.with(name, 'domif-setlink', async () => {
    const def = parseDomainXml(live.domainXml);
    const i = findInterface(def, which);
    const nic = def.devices.interfaces![i]!;
    await live.qmp.execute('set_link', { name: nicDeviceId(nic, i), up: state === 'up' });
    nic.linkState = state;
    live.domainXml = formatDomainXml(def);
    live.persist();
    return rt.info(name);
  });
}
