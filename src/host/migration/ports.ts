// One incoming-port allocator per host runtime, shared by the migration
// activities and the auto-destroy reaper.
import type { HostRuntime } from '../host-runtime.js';
import { PortAllocator } from '../../migration/port-allocator.js';

const allocators = new WeakMap<HostRuntime, PortAllocator>();

/** One incoming-port allocator per host runtime, shared by the activities and the auto-destroy reaper. */
export function portsFor(rt: HostRuntime): PortAllocator {
  let p = allocators.get(rt);
  if (!p) {
    const { address, portMin, portMax } = rt.config.migration;
    // Probe where QEMU will listen; a wildcard address probes both families.
    const wildcard = address === '0.0.0.0' || address === '::';
    p = new PortAllocator(portMin, portMax, wildcard ? {} : { bindHost: address });
    allocators.set(rt, p);
  }
  return p;
}
