// The operator's power buttons: shutdown and reboot press the ACPI power button
// (the guest decides; a guest that ignores it keeps running), reset is the hard
// reset. What the guest then does is applied by guest-lifecycle.ts.
import type { DomainInfo } from '../common/domain-types.js';
import { ErrorType, vmError } from '../common/errors.js';
import { parseDomainXml } from '../domain/index.js';
import type { HostRuntime } from './host-runtime.js';
import type { RunningDomain } from './running-domain.js';

function requireActive(rt: HostRuntime, name: string, verb: string): RunningDomain {
  const dom = rt.requireRunning(name);
  if (dom.state === 'crashed')
    throw vmError(ErrorType.OperationInvalid, `domain '${name}' has crashed: ${verb} needs a running guest (use reset or destroy)`, { domain: name });
  if (dom.reason === 'incoming migration') throw vmError(ErrorType.OperationInvalid, `domain '${name}' is an incoming migration`, { domain: name });
  return dom;
}

export async function shutdownDomain(rt: HostRuntime, name: string): Promise<DomainInfo> {
  // A retried request (worker restarted after pressing) finds the guest already off: done.
  if (!rt.getRunning(name)) return rt.info(name);
  const dom = requireActive(rt, name, 'shutdown');
  return await rt.locks.with(name, 'shutdown', async () => {
    await dom.qmp.execute('system_powerdown');
    return rt.info(name);
  });
}

export async function rebootDomain(rt: HostRuntime, name: string): Promise<DomainInfo> {
  const dom = requireActive(rt, name, 'reboot');
  // As libvirt: with on_reboot destroy a reboot would only stop the guest.
  if (parseDomainXml(dom.domainXml).onReboot === 'destroy') {
    throw vmError(ErrorType.OperationInvalid, `domain '${name}' has on_reboot 'destroy': a reboot is not allowed`, { domain: name });
  }
  return await rt.locks.with(name, 'reboot', async () => {
    // Persisted first: a worker restarted before the guest powers off still resets it.
    dom.fakeReboot = true;
    dom.persist();
    try {
      await dom.qmp.execute('system_powerdown');
    } catch (err) {
      dom.fakeReboot = false;
      if (!dom.qmp.isClosed) dom.persist();
      throw err;
    }
    return rt.info(name);
  });
}

export async function resetDomain(rt: HostRuntime, name: string): Promise<DomainInfo> {
  const dom = rt.requireRunning(name);
  return await rt.locks.with(name, 'reset', async () => {
    await dom.qmp.execute('system_reset');
    // libvirt: a crashed guest that is reset waits, paused, for the operator to resume it.
    if (dom.state === 'crashed') dom.setState('paused', 'crashed');
    return rt.info(name);
  });
}

/**
 * Waits until the domain is no longer running (QEMU gone, or paused/crashed by its
 * policy) or `deadlineMs` (epoch ms) passes; then OperationTimeout, nothing forced.
 */
export async function waitForShutoff(rt: HostRuntime, name: string, deadlineMs: number, signal?: AbortSignal): Promise<DomainInfo> {
  const dom = rt.getRunning(name);
  if (!dom) return rt.info(name);
  const left = deadlineMs - Date.now();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const outcome = await Promise.race([
    dom.gone.then(() => 'gone' as const),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(0, left)))),
    new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
  ]);
  clearTimeout(timer);
  if (onAbort) signal?.removeEventListener('abort', onAbort);
  if (outcome === 'aborted') throw vmError(ErrorType.OperationAborted, `waiting for domain '${name}' to shut down was cancelled`, { domain: name });
  if (outcome === 'timeout') {
    throw vmError(ErrorType.OperationTimeout, `domain '${name}' did not shut down within the timeout; it is still ${dom.state} (not forced: use destroy)`, {
      domain: name,
      state: dom.state,
    });
  }
  return rt.infoAfterStop(name, dom);
}
