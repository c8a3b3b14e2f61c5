// virsh change-media: put a new medium into a cdrom (or eject it). On a running
// domain QEMU's tray is changed over QMP and the live XML follows; a domain that
// is not running gets its persistent definition changed. PATH names the drive
// by its target (hdc) or its current source, as virsh takes it.
import type { DomainInfo } from '../common/domain-types.js';
import { ErrorType, vmError } from '../common/errors.js';
import { formatDomainXml, parseDomainXml, type DomainDef, type DiskDef } from '../domain/index.js';
import { diskDeviceId } from '../qemu/devices/disk.js';
import type { HostRuntime } from './host-runtime.js';

export interface ChangeMediaOptions {
  /** Target (hdc) or current source of the drive. */
  path: string;
  /** The new medium; absent with eject. */
  source?: string;
  eject?: boolean;
}

function findDrive(def: DomainDef, path: string): DiskDef {
  const disk = def.devices.disks.find((d) => d.target.dev === path || d.source?.file === path || d.source?.dev === path);
  if (disk === undefined) throw vmError(ErrorType.OperationInvalid, `domain '${def.name}' has no disk '${path}'`, { domain: def.name });
  if (disk.device !== 'cdrom') throw vmError(ErrorType.OperationInvalid, `disk '${disk.target.dev}' is a ${disk.device}, not a removable cdrom`);
  return disk;
}

function checkOptions(o: ChangeMediaOptions): void {
  if ((o.eject === true) === (o.source !== undefined)) throw vmError(ErrorType.OperationInvalid, 'change-media needs exactly one of --source FILE or --eject');
  if (o.source !== undefined && (!o.source.startsWith('/') || /[\u0000-\u001f]/.test(o.source))) {
    throw vmError(ErrorType.OperationInvalid, `media source '${o.source}' must be an absolute path`);
  }
}

function withMedium(def: DomainDef, target: string, source: string | undefined): DomainDef {
  const out = structuredClone(def);
  const disk = out.devices.disks.find((d) => d.target.dev === target)!;
  if (source === undefined) delete disk.source;
  else disk.source = disk.type === 'block' ? { dev: source } : { file: source };
  return out;
}

export async function changeMedia(rt: HostRuntime, name: string, o: ChangeMediaOptions): Promise<DomainInfo> {
  checkOptions(o);
  const dom = rt.getRunning(name);
  if (dom === undefined) {
    const xml = rt.defs.read(name);
    if (xml === undefined) throw rt.notFound(name);
    const disk = findDrive(parseDomainXml(xml), o.path);
    rt.locks.withSync(name, () => rt.defs.write(name, formatDomainXml(withMedium(parseDomainXml(xml), disk.target.dev, o.source))));
    return rt.info(name);
  }
  return await rt.locks.with(name, 'change-media', async () => {
    const live = parseDomainXml(dom.domainXml);
    const disk = findDrive(live, o.path);
    const id = diskDeviceId(disk.target.dev);
    if (o.source === undefined) {
      await dom.qmp.execute('eject', { id, force: true });
    } else {
      await dom.qmp.execute('blockdev-change-medium', { id, filename: o.source, format: disk.driver?.type ?? 'raw', 'read-only-mode': 'retain' });
    }
    dom.domainXml = formatDomainXml(withMedium(live, disk.target.dev, o.source));
    dom.persist();
    return rt.info(name);
  });
}
