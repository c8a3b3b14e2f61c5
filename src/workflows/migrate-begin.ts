// The front both protocols share: tunnel support, Begin on the source with the
// destination's probe, the protocol both speak; then the source's job adopted.
// Nothing on the destination is touched yet.
import { log, upsertSearchAttributes } from '@temporalio/workflow';
import { ErrorType, vmError } from '../common/errors.js';
import { jobWorkflowId } from '../common/job-types.js';
import { copiesStorage, pickProtocol, streamEncrypted, type BeginResult, type MigrationProtocol } from '../common/migration-types.js';
import { DomainUuid } from '../common/search-attributes.js';
import type { Compensation } from './compensation.js';
import { notTaken, on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';
import { confirmFailure } from './migrate-undo.js';

export interface Begun {
  begun: BeginResult;
  protocol: MigrationProtocol;
  /** tls / tunnelled: the source certificate's subject, which the destination QEMU pins. */
  sourceTlsIdentity?: string;
  /** What undoes Begin, on the stack: v3's failed Confirm (v2 puts its own in its place). */
  sourceUndo: Compensation;
}

/** Both workers must hold certificates; without them the stream would have to go in clear. Nothing is touched yet. */
async function tunnelIdentity(m: MigrationJob): Promise<string | undefined> {
  if (!streamEncrypted(m.flags)) return undefined;
  const support = await Promise.all([m.src, m.dst].map((h) => on(h, 'probe', 'migrateTunnelSupport', [], `tunnel support of ${h}`)));
  const missing = support.filter((t) => !t.configured).map((t) => t.host);
  if (missing.length > 0) {
    throw vmError(
      ErrorType.ConfigUnsupported,
      `${m.has('tunnelled') ? 'tunnelled' : 'TLS'} migration needs tunnel certificates on both hosts; none configured on ${missing.map((h) => `'${h}'`).join(' and ')} (the stream is never sent in clear)`,
      { hosts: missing },
    );
  }
  return support[0]!.identity;
}

export async function begin(m: MigrationJob): Promise<Begun> {
  const { input, domain, src, dst, tracker } = m;
  const sourceTlsIdentity = await tunnelIdentity(m);
  // Begin and the destination probe run together: both are read-mostly, and a refusal below undoes Begin.
  const [b, d] = await Promise.allSettled([
    on(
      src,
      'begin',
      'migrateBegin',
      [
        {
          ...m.job,
          domain,
          domainUuid: input.domainUuid,
          protocol: input.maxProtocol ?? 3,
          flags: m.flags,
          destinationXml: input.destinationXml,
          dname: input.dname,
          bandwidthMiBps: tracker.info.speedLimitMiBps,
          maxDowntimeMs: tracker.info.maxDowntimeMs,
          ...(input.postcopyBandwidthMiBps !== undefined ? { postcopyBandwidthMiBps: input.postcopyBandwidthMiBps } : {}),
          ...(input.migrateDisks !== undefined ? { migrateDisks: input.migrateDisks } : {}),
        },
      ],
      `Begin: check '${domain}' and take the job on ${src}`,
    ),
    on(dst, 'probe', 'hostInfo', [], `host info of ${dst}`),
  ]);
  if (b.status === 'rejected') {
    // A source that never picked Begin up holds nothing to undo; asking it would wait the cleanup's schedule-to-start.
    if (!notTaken(b.reason)) m.saga.push(confirmFailure(m, ''));
    throw b.reason;
  }
  const begun = b.value;
  const sourceUndo = m.saga.push(confirmFailure(m, begun.uuid));
  if (d.status === 'rejected') throw d.reason;
  const di = d.value;
  if (begun.hostUuid === di.hostUuid) {
    throw vmError(ErrorType.OperationInvalid, `attempt to migrate to the same host: '${src}' and '${dst}' have the same host UUID ${di.hostUuid}`, {
      hostUuid: di.hostUuid,
    });
  }
  const protocol = pickProtocol(begun.protocolVersions, di.protocolVersions, input.maxProtocol);
  if (protocol === undefined) {
    throw vmError(
      ErrorType.ConfigUnsupported,
      `no migration protocol in common: ${src} speaks v${begun.protocolVersions.join('/v')}, ${dst} speaks v${di.protocolVersions.join('/v')}`,
    );
  }
  if (protocol === 2 && begun.lockStateNeeded === true) {
    throw vmError(
      ErrorType.ConfigUnsupported,
      `'${domain}' holds disk leases, which only protocol v3 can move (in its cookie's lock state); this migration would use v2`,
    );
  }
  if (m.has('postcopy') && protocol !== 3) {
    // As libvirt: v2 has no Confirm, so nothing could wait for the stream's end while the destination runs the guest.
    throw vmError(ErrorType.ConfigUnsupported, `post-copy needs protocol v3; ${dst} and ${src} share only v${protocol}`);
  }
  if (copiesStorage(m.flags) && protocol !== 3) {
    throw vmError(
      ErrorType.ConfigUnsupported,
      `copying storage needs protocol v3 (the NBD port travels in the cookie); ${dst} and ${src} share only v${protocol}`,
    );
  }
  return { begun, protocol, sourceUndo, ...(sourceTlsIdentity !== undefined ? { sourceTlsIdentity } : {}) };
}

/** The job is the source's now: the domain's UUID is known (and findable), and signals that came during Begin reach QEMU. */
export function adoptSourceJob(m: MigrationJob, begun: BeginResult): void {
  m.tracker.info.domainUuid = begun.uuid;
  upsertSearchAttributes([{ key: DomainUuid, value: begun.uuid }]);
  const wf = m.job.workflowId;
  if (wf !== jobWorkflowId(begun.uuid)) {
    log.warn('migration not started under the domain job ID; cluster-wide one-job-per-domain is not enforced for it', { expected: jobWorkflowId(begun.uuid) });
  }
  m.control.attach(begun, !m.has('offline'));
}
