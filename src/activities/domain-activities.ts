// Host activities for domain lifecycle. Built by a factory over the host's
// runtime so the worker decides what they touch (samples-typescript's pattern).
import type { BlockStats, DomainInfo, DomainSummary, HostInfo } from '../common/domain-types.js';
import { changeMedia, type ChangeMediaOptions } from '../host/change-media.js';
import type { HostRuntime } from '../host/host-runtime.js';
import { Context } from '@temporalio/activity';
import { rebootDomain, resetDomain, shutdownDomain, waitForShutoff } from '../host/power.js';
import { setInterfaceLink } from '../host/interface-link.js';
import { activityRequestId } from '../support/activity-request-id.js';
import { whileHeartbeating } from '../support/step-heartbeat.js';

export function createDomainActivities(rt: HostRuntime) {
  return {
    async hostInfo(): Promise<HostInfo> {
      return rt.hostInfo();
    },
    async defineDomain(xml: string): Promise<DomainSummary> {
      return rt.define(xml);
    },
    async undefineDomain(name: string): Promise<DomainInfo> {
      return rt.undefine(name);
    },
    async startDomain(name: string, opts: { paused?: boolean } = {}): Promise<DomainInfo> {
      return await rt.start(name, { paused: opts.paused, requestId: activityRequestId() });
    },
    async destroyDomain(name: string): Promise<DomainInfo> {
      return await rt.destroy(name);
    },
    async shutdownDomain(name: string): Promise<DomainInfo> {
      return await shutdownDomain(rt, name);
    },
    async rebootDomain(name: string): Promise<DomainInfo> {
      return await rebootDomain(rt, name);
    },
    async resetDomain(name: string): Promise<DomainInfo> {
      return await resetDomain(rt, name);
    },
    /** Long: heartbeats, so a worker restart is noticed and the retry waits out the same deadline. */
    async waitDomainShutoff(name: string, deadlineMs: number): Promise<DomainInfo> {
      return await whileHeartbeating(() => waitForShutoff(rt, name, deadlineMs, Context.current().cancellationSignal));
    },
    async suspendDomain(name: string): Promise<DomainInfo> {
      return await rt.suspend(name);
    },
    async resumeDomain(name: string): Promise<DomainInfo> {
      return await rt.resume(name);
    },
    async domainInfo(name: string): Promise<DomainInfo> {
      return rt.info(name);
    },
    async setInterfaceLink(name: string, iface: string, state: 'up' | 'down'): Promise<DomainInfo> {
      return await setInterfaceLink(rt, name, iface, state);
    },
    async blockStats(name: string): Promise<BlockStats[]> {
      return await rt.blockStats(name);
    },
    async changeMedia(name: string, opts: ChangeMediaOptions): Promise<DomainInfo> {
      return await changeMedia(rt, name, opts);
    },
    async listDomains(): Promise<DomainSummary[]> {
      return rt.list();
    },
    async dumpDomainXml(name: string, opts: { inactive?: boolean; migratable?: boolean; securityInfo?: boolean } = {}): Promise<string> {
      return rt.dumpXml(name, opts);
    },
  };
}

export type DomainActivities = ReturnType<typeof createDomainActivities>;
