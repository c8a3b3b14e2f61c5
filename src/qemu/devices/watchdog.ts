// <watchdog model='i6300esb' action=...> on QEMU's command line: the PCI
// watchdog and QEMU's watchdog action (-action watchdog=, one per QEMU, so
// every watchdog of a domain must ask for the same one). libvirt's 'dump'
// needs libvirt to write the dump itself: not supported.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { pciPlacement } from './pci.js';

const ACTIONS = new Set(['reset', 'shutdown', 'poweroff', 'pause', 'none', 'inject-nmi']);

export function watchdogArgs(def: DomainDef): string[] {
  const watchdogs = def.devices.watchdogs ?? [];
  const args: string[] = [];
  watchdogs.forEach((w, i) => {
    if (w.model !== 'i6300esb') throw vmError(ErrorType.ConfigUnsupported, `watchdog model '${w.model}' is not supported (only i6300esb)`);
    args.push('-device', `i6300esb,id=watchdog${i}${pciPlacement(def, w.address, 'watchdog i6300esb')}`);
  });
  const actions = new Set(watchdogs.map((w) => w.action ?? 'reset'));
  if (actions.size > 1) throw vmError(ErrorType.ConfigUnsupported, `all watchdogs must have the same action, found ${[...actions].join(', ')}`);
  const [action] = actions;
  if (action !== undefined) {
    if (!ACTIONS.has(action)) throw vmError(ErrorType.ConfigUnsupported, `watchdog action '${action}' is not supported`);
    args.push('-action', `watchdog=${action}`);
  }
  return args;
}
