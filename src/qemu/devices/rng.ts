// <rng model='virtio'> on QEMU's command line: a random-number backend object
// reading the host's /dev/urandom or /dev/random, and virtio-rng-pci on it.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { pciPlacement } from './pci.js';

const SOURCES = new Set(['/dev/urandom', '/dev/random']);

export function rngArgs(def: DomainDef): string[] {
  const args: string[] = [];
  (def.devices.rngs ?? []).forEach((r, i) => {
    if (r.model !== 'virtio') throw vmError(ErrorType.ConfigUnsupported, `rng model '${r.model}' is not supported (only virtio)`);
    if (r.backendModel !== 'random') throw vmError(ErrorType.ConfigUnsupported, `rng backend '${r.backendModel}' is not supported (only random)`);
    const source = r.backendSource ?? '/dev/random';
    if (!SOURCES.has(source)) throw vmError(ErrorType.ConfigUnsupported, `rng source '${source}' is not supported (only /dev/urandom or /dev/random)`);
    args.push('-object', `rng-random,id=objrng${i},filename=${source}`);
    const rate = r.rateBytes === undefined ? '' : `,max-bytes=${r.rateBytes},period=${r.ratePeriodMs ?? 1000}`;
    args.push('-device', `virtio-rng-pci,rng=objrng${i},id=rng${i}${rate}${pciPlacement(def, r.address, 'rng virtio')}`);
  });
  return args;
}
