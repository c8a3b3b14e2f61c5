// What the host does when the guest powers off, reboots, panics or its watchdog
// fires. QEMU is started so that it only pauses and reports (qemu/lifecycle-args.ts);
// the domain's <on_poweroff>, <on_reboot> and <on_crash> are applied here, as
// libvirt's QEMU driver applies them:
//   poweroff: destroy -> QEMU stopped, shutoff (shutdown); restart -> reset in place
//   reboot:   restart is QEMU's own reset; destroy -> QEMU turned it into a poweroff,
//             stopped here, shutoff (shutdown)
//   panic:    destroy -> shutoff (crashed); restart -> reset in place; preserve ->
//             left paused, crashed (panicked)
//   a reboot asked for by the operator (fakeReboot) turns the next poweroff into a reset.
// Reactions run one at a time per domain; a job holding the domain (save,
// migration) keeps it: QEMU stays paused and the job's own checks see it.
import type { Logger } from 'pino';
import { parseDomainXml } from '../domain/index.js';
import type { QmpEvent } from '../qemu/qmp-client.js';
import type { DomainLocks } from './domain-lock.js';
import type { RunningDomain } from './running-domain.js';

const RESET_EVENT_TIMEOUT_MS = 10_000;

export interface LifecycleHost {
  readonly log: Logger;
  readonly locks: DomainLocks;
  kill(dom: RunningDomain): Promise<void>;
  /** Why the domain is shut off now (shown by dominfo until it starts again). */
  recordStop(name: string, reason: string): void;
}

/** What happened to the guest, from an event or from QEMU's run state at reconnection. */
export type GuestHappening = 'poweroff' | 'reboot-as-poweroff' | 'panic' | 'other';

export function happeningOf(ev: QmpEvent): GuestHappening {
  if (ev.event === 'GUEST_PANICKED') return 'panic';
  if (ev.event !== 'SHUTDOWN') return 'other';
  const data = (ev.data ?? {}) as { guest?: unknown; reason?: unknown };
  // host-signal, host-qmp-quit: the host is stopping QEMU (destroy), nothing to apply.
  if (typeof data.reason === 'string' && data.reason.startsWith('host-')) return 'other';
  if (data.reason === 'guest-reset') return 'reboot-as-poweroff';
  // guest-panic: QEMU was told to pause on panic, so only an odd configuration gets here.
  if (data.reason === 'guest-panic') return 'panic';
  return 'poweroff';
}

/** QEMU's run state (query-status) read at reconnection, as the happening it records. */
export function happeningOfRunState(status: string): GuestHappening {
  if (status === 'shutdown') return 'poweroff';
  if (status === 'guest-panicked') return 'panic';
  return 'other';
}

const queues = new WeakMap<RunningDomain, Promise<void>>();

/** Queues the reaction to one happening; errors are logged (QEMU's state stays as QEMU left it). */
export function reactTo(host: LifecycleHost, dom: RunningDomain, what: GuestHappening, detail: Record<string, unknown>): Promise<void> {
  if (what === 'other') return Promise.resolve();
  const prev = queues.get(dom) ?? Promise.resolve();
  const next = prev
    .then(() => react(host, dom, what, detail))
    .catch((err: unknown) => host.log.error({ domain: dom.name, what, err }, 'applying the lifecycle action failed'));
  queues.set(dom, next);
  return next;
}

async function react(host: LifecycleHost, dom: RunningDomain, what: GuestHappening, detail: Record<string, unknown>): Promise<void> {
  if (dom.qmp.isClosed) return;
  const job = host.locks.job(dom.name);
  if (job) {
    host.log.warn({ domain: dom.name, what, job: job.id, ...detail }, 'guest lifecycle event during a job: left to the job');
    return;
  }
  const def = parseDomainXml(dom.domainXml);
  let action: string;
  let stopReason = 'shutdown';
  if (what === 'panic') {
    action = def.onCrash ?? 'destroy';
    stopReason = 'crashed';
    if (dom.state !== 'crashed') dom.setState('crashed', 'panicked');
  } else if (dom.fakeReboot && what === 'poweroff') {
    action = 'restart';
  } else if (what === 'reboot-as-poweroff') {
    action = def.onReboot ?? 'restart';
  } else {
    action = def.onPoweroff ?? 'destroy';
  }
  host.log.info({ domain: dom.name, what, action, fakeReboot: dom.fakeReboot, ...detail }, 'applying the lifecycle action');
  if (action === 'restart') {
    await resetAndRun(dom);
  } else if (action === 'destroy') {
    host.recordStop(dom.name, stopReason);
    await host.kill(dom);
  }
  // preserve (on_crash only; validation refuses the rest): QEMU stays paused, crashed.
}

/** system_reset, wait until QEMU has done it, then run the CPUs: the guest boots again in the same QEMU. */
export async function resetAndRun(dom: RunningDomain): Promise<void> {
  const reset = dom.qmp.waitForEvent('RESET', { timeoutMs: RESET_EVENT_TIMEOUT_MS });
  reset.catch(() => undefined);
  await dom.qmp.execute('system_reset');
  await reset;
  await dom.qmp.execute('cont');
  dom.fakeReboot = false;
  dom.setState('running', 'booted');
}
