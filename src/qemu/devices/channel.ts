// <channel type='unix'> with a virtio target on QEMU's command line: a socket
// chardev (QEMU listens for mode bind, connects for mode connect) and a named
// port on the virtio-serial controller at the channel's address. The host
// fills in the socket path of a bind channel that names none before QEMU runs.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { q } from './quote.js';

export function channelArgs(def: DomainDef): string[] {
  const args: string[] = [];
  (def.devices.channels ?? []).forEach((ch, i) => {
    const what = `channel ${ch.targetName ?? i}`;
    if (ch.type !== 'unix') throw vmError(ErrorType.ConfigUnsupported, `${what}: only type='unix' channels are supported, not '${ch.type}'`);
    if (ch.targetType !== 'virtio')
      throw vmError(ErrorType.ConfigUnsupported, `${what}: only target type 'virtio' is supported, not '${ch.targetType ?? 'none'}'`);
    if (ch.sourcePath === undefined) throw vmError(ErrorType.InternalError, `${what}: no socket path (the host assigns one before start)`);
    const server = (ch.sourceMode ?? 'bind') === 'bind' ? ',server=on,wait=off' : '';
    args.push('-chardev', `socket,id=charchannel${i},path=${q(ch.sourcePath)}${server}`);
    const a = ch.address;
    const place = a === undefined ? '' : `,bus=virtio-serial${Number(a.controller ?? 0)}.${Number(a.bus ?? 0)},nr=${Number(a.port ?? 1)}`;
    const name = ch.targetName === undefined ? '' : `,name=${q(ch.targetName)}`;
    args.push('-device', `virtserialport${place},chardev=charchannel${i},id=channel${i}${name}`);
  });
  return args;
}
