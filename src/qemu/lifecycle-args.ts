// What QEMU does by itself when the guest powers off, reboots or panics. As libvirt
// does with -no-shutdown, QEMU never exits or resets on its own account for a
// poweroff or a panic: it pauses and reports the event, and the host worker applies
// <on_poweroff> and <on_crash> (src/host/guest-lifecycle.ts). A guest reboot is left
// to QEMU (reset in place) unless <on_reboot> is destroy, when it turns into a
// shutdown the worker then handles.
import type { DomainDef } from '../domain/domain-model.js';

export function lifecycleActionArgs(def: DomainDef): string[] {
  const reboot = def.onReboot === 'destroy' ? 'shutdown' : 'reset';
  return ['-action', `shutdown=pause,reboot=${reboot},panic=pause`];
}
