// A domain whose QEMU is alive: its QMP connection, its state as QEMU reports it
// (through events, so queries never need the monitor), and its status file.
import { rmSync } from 'node:fs';
import type { DomainState } from '../common/domain-types.js';
import type { QmpClient, QmpEvent } from '../qemu/qmp-client.js';
import { writeStatus, removeStatus, type DomainStatus } from './status-file.js';

export interface RunningDomainInit extends DomainStatus {
  name: string;
  uuid: string;
  qmp: QmpClient;
}

export class RunningDomain {
  readonly name: string;
  readonly uuid: string;
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly qmpSocket: string;
  readonly memoryBackingFile?: string;
  readonly startRequestId?: string;
  domainXml: string;
  state: DomainState;
  reason: string;
  /** Set by a reboot request until the guest's poweroff turns into a reset (libvirt's fake reboot). */
  fakeReboot: boolean;
  /** The last action a watchdog event reported (for diagnostics: dominfo's reason says what it did). */
  lastWatchdogAction?: string;
  /** Set while the worker closes QMP on purpose, so the close is not read as QEMU dying. */
  private detaching = false;
  private readonly unsubscribe: () => void;
  /** Settles when QEMU is gone (not when the worker detaches). */
  readonly gone: Promise<void>;

  constructor(
    init: RunningDomainInit,
    private readonly runDir: string,
    onGone: (dom: RunningDomain) => void | Promise<void>,
    /** The guest powered off, reset, panicked or its watchdog fired: the host applies the domain's policy. */
    private readonly onGuest?: (dom: RunningDomain, ev: QmpEvent) => void,
  ) {
    this.name = init.name;
    this.uuid = init.uuid;
    this.pid = init.pid;
    this.qmp = init.qmp;
    this.qmpSocket = init.qmpSocket;
    this.memoryBackingFile = init.memoryBackingFile;
    this.startRequestId = init.startRequestId;
    this.domainXml = init.domainXml;
    this.state = init.state;
    this.reason = init.reason;
    this.fakeReboot = init.fakeReboot === true;
    this.unsubscribe = this.qmp.onEvent((ev) => this.onEvent(ev));
    // Settles after onGone (the host's stopped/release hooks included), so a destroy returns once they ran.
    this.gone = this.qmp.closed.then(async () => {
      this.unsubscribe();
      if (this.detaching) return;
      this.cleanupFiles();
      await onGone(this);
    });
  }

  private onEvent(ev: QmpEvent): void {
    switch (ev.event) {
      case 'STOP':
        if (this.state === 'running') this.setState('paused', this.reason === 'migrating' ? 'migration' : 'user');
        break;
      case 'RESUME':
        this.setState('running', 'unpaused');
        break;
      case 'GUEST_PANICKED':
        this.setState('crashed', 'panicked');
        this.onGuest?.(this, ev);
        break;
      case 'WATCHDOG':
        this.lastWatchdogAction = String((ev.data as { action?: unknown } | undefined)?.action);
        // QEMU pauses after this event; libvirt's reason for that pause is 'watchdog'.
        if (this.lastWatchdogAction === 'pause' && this.state === 'running') this.setState('paused', 'watchdog');
        this.onGuest?.(this, ev);
        break;
      case 'SHUTDOWN':
      case 'RESET':
        this.onGuest?.(this, ev);
        break;
      default:
        break;
    }
  }

  setState(state: DomainState, reason: string): void {
    this.state = state;
    this.reason = reason;
    this.persist();
  }

  persist(): void {
    writeStatus(this.runDir, this.name, this.status());
  }

  status(): DomainStatus {
    return {
      state: this.state,
      reason: this.reason,
      pid: this.pid,
      qmpSocket: this.qmpSocket,
      memoryBackingFile: this.memoryBackingFile,
      startRequestId: this.startRequestId,
      fakeReboot: this.fakeReboot || undefined,
      domainXml: this.domainXml,
    };
  }

  /** The worker lets go of QEMU without stopping it (worker shutdown). */
  async detach(): Promise<void> {
    this.detaching = true;
    await this.qmp.close();
  }

  private cleanupFiles(): void {
    removeStatus(this.runDir, this.name);
    rmSync(this.qmpSocket, { force: true });
    if (this.memoryBackingFile) rmSync(this.memoryBackingFile, { force: true });
  }
}
