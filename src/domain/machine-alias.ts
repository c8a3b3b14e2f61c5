// A definition given to replace the one a guest runs (migrate --xml, save --xml, restore
// --xml, save-image-define) may name the machine by its alias (pc, q35) while the guest runs
// a versioned type (pc-i440fx-7.2, after a migration pinned it). libvirt reads such an alias
// as this QEMU's versioned type when it parses the XML; here the given definition takes the
// guest's own type when its alias is that type's family, so the ABI check compares like with
// like and what starts is what ran. Any other pair is left for the ABI check to refuse.
import type { DomainDef } from './domain-model.js';

/** The machine a definition without one runs (command line default). */
const DEFAULT_ALIAS = 'pc';

const FAMILY: Record<string, (machine: string) => boolean> = {
  pc: (m) => m.startsWith('pc-i440fx-') || /^pc-\d/.test(m),
  q35: (m) => m.startsWith('pc-q35-'),
};

export function pinMachineAlias(def: DomainDef, guestMachine: string | undefined): DomainDef {
  const own = def.os.machine ?? DEFAULT_ALIAS;
  if (guestMachine === undefined || own === guestMachine || FAMILY[own]?.(guestMachine) !== true) return def;
  return { ...def, os: { ...def.os, machine: guestMachine } };
}
