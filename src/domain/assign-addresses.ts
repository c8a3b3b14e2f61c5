// The addresses libvirt gives a definition when it parses it: every device
// gets a fixed place (PCI slot, drive, virtio-serial port, USB port) written
// into the definition, so the guest sees the same hardware on every start,
// restore and migration, whoever starts it. Addresses already there are
// honoured and checked. Run at define and before every QEMU start.
import { assignBusAddresses } from './bus-addresses.js';
import type { DomainDef } from './domain-model.js';
import { assignPciAddresses } from './pci-addresses.js';
import { collapseDomainDef, expandDomainDef } from './preserved.js';
import { childElements } from '../xml/xml-edit.js';
import type { XmlElement } from '../xml/xml-tree.js';

/** A copy of `def` with every missing device address filled in; throws a typed error for a bad or conflicting one. */
export function assignAddresses(def: DomainDef): DomainDef {
  const tree = expandDomainDef(def);
  const root = tree.preserved?.find((n): n is XmlElement => n.kind === 'element');
  const devices = root === undefined ? undefined : childElements(root, 'devices')[0];
  // Bus addresses first: they add the controllers (SATA, virtio-serial) that then need PCI slots.
  assignBusAddresses(tree);
  assignPciAddresses(tree, devices);
  return collapseDomainDef(tree);
}
