// What libvirt leaves out of domain XML unless the caller asks for security
// information (virsh dumpxml --security-info): the graphics passwords. The
// stored and live definitions keep them; only what is shown to a caller loses them.
import { cloneDomainDef, type DomainDef } from './domain-model.js';

/** A copy of `def` without secrets; `def` is not modified. */
export function withoutSecrets(def: DomainDef): DomainDef {
  if (!def.devices.graphics.some((g) => g.passwd !== undefined)) return def;
  const copy = cloneDomainDef(def);
  for (const g of copy.devices.graphics) delete g.passwd;
  return copy;
}
