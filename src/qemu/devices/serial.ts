// <serial> and <console> on QEMU's command line: a pty the host allocates, or a
// file QEMU writes the guest's output to (what tests and log collectors read).
import { isAbsolute } from 'node:path';
import { ErrorType, vmError } from '../../common/errors.js';
import type { CharDevDef, DomainDef } from '../../domain/domain-model.js';
import { q } from './quote.js';

function backend(s: CharDevDef, i: number): string {
  if (s.type === 'pty') return `pty,id=charserial${i}`;
  if (s.type === 'file') {
    if (s.sourcePath === undefined || !isAbsolute(s.sourcePath)) {
      throw vmError(ErrorType.ConfigUnsupported, `serial ${i}: type='file' needs <source path='...'> with an absolute path`);
    }
    return `file,id=charserial${i},path=${q(s.sourcePath)}${s.sourceAppend === 'on' ? ',append=on' : ''}`;
  }
  throw vmError(ErrorType.ConfigUnsupported, `serial ${i}: type '${s.type}' is not supported (only 'pty' and 'file')`);
}

export function serialArgs(def: DomainDef): string[] {
  const args: string[] = [];
  def.devices.serials.forEach((s, i) => {
    args.push('-chardev', backend(s, i), '-device', `isa-serial,chardev=charserial${i},id=serial${i}`);
  });
  for (const c of def.devices.consoles) {
    // A serial-type console is the first serial port seen from the other side: libvirt formats both.
    if (c.targetType !== undefined && c.targetType !== 'serial')
      throw vmError(ErrorType.ConfigUnsupported, `console target '${c.targetType}' is not supported`);
  }
  return args;
}
