// A host worker's start: reattach to every QEMU that outlived the previous
// worker (the seed's qemuProcessReconnect), bring its state up to date from
// QEMU's own word, and run the operator's reconnect hook (libvirt's `reconnect
// begin`; a refusal kills that QEMU, as libvirt does). Status files of dead
// QEMUs, and the taps and OVS ports of domains no QEMU runs any more, go.
import { rmSync } from 'node:fs';
import { parseDomainXml } from '../domain/index.js';
import { cgroupOf } from './cgroups.js';
import { QmpClient } from '../qemu/qmp-client.js';
import { isOurProcess } from '../support/proc.js';
import { happeningOfRunState, reactTo } from './guest-lifecycle.js';
import { runHook } from './hooks.js';
import type { HostRuntime } from './host-runtime.js';
import type { RunningDomain } from './running-domain.js';
import { listStatusNames, readStatus, removeStatus } from './status-file.js';

export async function reconnectAll(rt: HostRuntime): Promise<void> {
  const runDir = rt.config.runDir;
  for (const name of listStatusNames(runDir)) {
    let status;
    try {
      status = readStatus(runDir, name);
    } catch (err) {
      rt.log.warn({ domain: name, err }, 'unreadable status file removed');
      removeStatus(runDir, name);
      continue;
    }
    if (!isOurProcess(status.pid, status.qmpSocket)) {
      rt.log.info({ domain: name, pid: status.pid }, 'QEMU from a previous worker is gone; clearing its status');
      removeStatus(runDir, name);
      rmSync(status.qmpSocket, { force: true });
      if (status.memoryBackingFile) rmSync(status.memoryBackingFile, { force: true });
      await rt.confinement.release(parseDomainXml(status.domainXml), status.memoryBackingFile);
      continue;
    }
    try {
      const qmp = await QmpClient.connect(status.qmpSocket, { timeoutMs: 5000 });
      const dom = rt.adopt(name, status, qmp);
      await syncState(rt, dom);
      // Its QEMU kept its leases; a running guest lacking one takes it now, or is paused (host/leases/).
      await rt.leases.reconnected(dom);
      // Its cgroup or scope was neither made nor touched by this worker: QEMU has stayed in it.
      rt.log.info({ domain: name, pid: status.pid, state: dom.state, cgroup: cgroupOf(status.pid) }, 'reconnected to running QEMU');
      await reconnectHook(rt, dom);
    } catch (err) {
      // Alive but unreachable: never kill a guest we cannot prove is broken.
      rt.log.error({ domain: name, pid: status.pid, err }, 'QEMU alive but its monitor did not answer; left untouched');
    }
  }
  // What is left with a status file has a live QEMU (tracked or left untouched); every other ledger is an orphan.
  rt.taps.cleanOrphans(new Set(listStatusNames(runDir)));
}

/**
 * QEMU's own word on run state; events may have been missed while nobody listened.
 * A guest that powered off or panicked meanwhile waits, paused, for its action,
 * and a reboot asked for before the restart (fakeReboot, from the status file)
 * still turns the poweroff into a reset.
 */
async function syncState(rt: HostRuntime, dom: RunningDomain): Promise<void> {
  const st = await dom.qmp.execute<{ running: boolean; status: string }>('query-status');
  if (st.running && dom.state !== 'running') dom.setState('running', 'unpaused');
  else if (st.status === 'watchdog' && dom.state === 'running') dom.setState('paused', 'watchdog');
  else if (!st.running && dom.state === 'running') dom.setState('paused', st.status);
  else dom.persist();
  void reactTo(rt, dom, happeningOfRunState(st.status), { at: 'reconnect', runState: st.status });
}

/** libvirt's reconnect hook: a refusal kills the QEMU (its stopped and release hooks follow, from onGone). */
async function reconnectHook(rt: HostRuntime, dom: RunningDomain): Promise<void> {
  try {
    await runHook(rt, 'reconnect', dom.name, dom.domainXml);
  } catch (err) {
    rt.log.error({ domain: dom.name, pid: dom.pid, err }, 'the reconnect hook refused this QEMU: killing it, as libvirt does');
    rt.recordStop(dom.name, 'failed');
    await rt.kill(dom);
  }
}
