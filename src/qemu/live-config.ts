// What QEMU decides only at run time (pty paths, auto-allocated VNC ports), read back
// into the live definition; and secrets handed over QMP rather than argv.
import type { DomainDef } from '../domain/domain-model.js';
import type { QmpClient } from './qmp-client.js';
import { nicDeviceId } from './devices/interface.js';

export async function applyGraphicsPasswords(qmp: QmpClient, def: DomainDef): Promise<void> {
  for (const g of def.devices.graphics) {
    if (g.passwd === undefined || (g.type !== 'vnc' && g.type !== 'spice')) continue;
    await qmp.execute('set_password', { protocol: g.type, password: g.passwd });
  }
}

/** A NIC whose <link state='down'/> starts with its link down: QEMU has no command-line switch for it. */
export async function applyLinkStates(qmp: QmpClient, def: DomainDef): Promise<void> {
  for (const [i, n] of (def.devices.interfaces ?? []).entries()) {
    if (n.linkState === 'down') await qmp.execute('set_link', { name: nicDeviceId(n, i), up: false });
  }
}

/** Returns the definition with live-only facts filled in (the input is not modified). */
export async function readLiveFacts(qmp: QmpClient, def: DomainDef): Promise<DomainDef> {
  const live = structuredClone(def);
  const chardevs = await qmp.execute<{ label: string; filename: string }[]>('query-chardev');
  live.devices.serials.forEach((s, i) => {
    const pty = chardevs.find((c) => c.label === `charserial${i}`)?.filename;
    if (s.type === 'pty' && pty?.startsWith('pty:')) {
      s.sourcePath = pty.slice(4);
      s.tty = pty.slice(4);
    }
  });
  const first = live.devices.serials[0];
  for (const c of live.devices.consoles) {
    if (c.type === 'pty' && first?.tty) {
      c.sourcePath = first.sourcePath;
      c.tty = first.tty;
    }
  }
  const vnc = live.devices.graphics.find((g) => g.type === 'vnc');
  if (vnc) {
    const info = await qmp.execute<{ enabled: boolean; service?: string }>('query-vnc');
    if (info.enabled && info.service) vnc.port = Number(info.service);
  }
  return live;
}
