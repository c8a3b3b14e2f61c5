// The lifecycle actions libvirt's QEMU driver takes, and the ones vmferry takes:
// rename-restart is Xen's; preserve keeps a crashed guest but means nothing for a
// poweroff or a reboot; a poweroff that restarts while a reboot destroys cannot be
// told apart once QEMU turns the reboot into a shutdown. The coredump actions need
// a dump taken by the worker on its own account, which is not built (a dump is a
// job the operator starts: vmferry dump).
import type { DomainDef, TreeForm } from './domain-model.js';
import type { Checker } from './validate-checker.js';

export function checkLifecycleActions(c: Checker, def: DomainDef<TreeForm>, P: string): void {
  const actions: [string, string | undefined][] = [
    ['on_poweroff', def.onPoweroff],
    ['on_reboot', def.onReboot],
    ['on_crash', def.onCrash],
  ];
  for (const [el, action] of actions) {
    if (action === 'rename-restart') c.unsupported(`${el} action 'rename-restart' is not supported with QEMU`, `${P}/${el}`);
    if (action === 'preserve' && el !== 'on_crash') c.unsupported(`${el} action 'preserve' is not supported with QEMU`, `${P}/${el}`);
  }
  if (def.onCrash === 'coredump-destroy' || def.onCrash === 'coredump-restart') {
    c.unsupported(`on_crash action '${def.onCrash}' is not supported: vmferry does not take a dump on its own (use vmferry dump)`, `${P}/on_crash`);
  }
  if (def.onPoweroff === 'restart' && def.onReboot === 'destroy') {
    c.unsupported("on_poweroff 'restart' with on_reboot 'destroy' is not supported with QEMU", `${P}/on_poweroff`);
  }
}
