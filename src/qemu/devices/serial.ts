// <serial> and <console> on QEMU's command line.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';

export function serialArgs(def: DomainDef): string[] {
  const args: string[] = [];
  def.devices.serials.forEach((s, i) => {
    if (s.type !== 'pty') throw vmError(ErrorType.ConfigUnsupported, `serial ${i}: only type='pty' is supported`);
    args.push('-chardev', `pty,id=charserial${i}`, '-device', `isa-serial,chardev=charserial${i},id=serial${i}`);
  });
  for (const c of def.devices.consoles) {
    // A serial-type console is the first serial port seen from the other side: libvirt formats both.
    if (c.targetType !== undefined && c.targetType !== 'serial')
      throw vmError(ErrorType.ConfigUnsupported, `console target '${c.targetType}' is not supported`);
  }
  return args;
}
