// <graphics> on QEMU's command line: VNC and SPICE servers.
import { ErrorType, vmError } from '../../common/errors.js';
import type { GraphicsDef } from '../../domain/domain-model.js';

function listenAddress(g: GraphicsDef): string {
  return g.listens.find((l) => l.type === 'address')?.address ?? g.listen ?? '127.0.0.1';
}

export function graphicsArgs(g: GraphicsDef, spicePort: number | undefined): string[] {
  const addr = listenAddress(g);
  const host = addr.includes(':') ? `[${addr}]` : addr;
  if (g.type === 'vnc') {
    const auto = g.autoport || g.port === undefined || g.port < 0;
    // to=99 lets QEMU pick the first free display itself: no race with another guest.
    const display = auto ? `${host}:0,to=99` : `${host}:${(g.port ?? 5900) - 5900}`;
    return ['-vnc', `${display}${g.passwd !== undefined ? ',password=on' : ''}`];
  }
  if (g.type === 'spice') {
    const opts = [`port=${spicePort ?? g.port}`, `addr=${addr}`];
    if (g.passwd === undefined) opts.push('disable-ticketing=on');
    return ['-spice', opts.join(',')];
  }
  throw vmError(ErrorType.ConfigUnsupported, `graphics type '${g.type}' is not supported`);
}
