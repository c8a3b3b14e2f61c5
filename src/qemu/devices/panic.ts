// <panic> on QEMU's command line: the pvpanic device a guest kernel writes to
// when it panics (QEMU then reports GUEST_PANICKED). model isa (x86's default)
// is the ISA pvpanic at I/O port 0x505 or the address's iobase; model pvpanic
// is the PCI one.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { pciPlacement } from './pci.js';

export function panicArgs(def: DomainDef): string[] {
  const args: string[] = [];
  (def.devices.panics ?? []).forEach((p, i) => {
    const model = p.model ?? 'isa';
    if (model === 'isa') {
      const a = p.address;
      if (a !== undefined && a.type !== 'isa')
        throw vmError(ErrorType.ConfigUnsupported, `panic model isa: address type '${a.type}' is not supported (only isa)`);
      const iobase = a?.iobase === undefined ? '' : `,ioport=${Number(a.iobase)}`;
      args.push('-device', `pvpanic,id=panic${i}${iobase}`);
    } else if (model === 'pvpanic') {
      args.push('-device', `pvpanic-pci,id=panic${i}${pciPlacement(def, p.address, 'panic pvpanic')}`);
    } else {
      throw vmError(ErrorType.ConfigUnsupported, `panic model '${model}' is not supported on this machine (only isa, pvpanic)`);
    }
  });
  return args;
}
