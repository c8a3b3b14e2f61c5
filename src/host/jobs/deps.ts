// What the job code of one host worker shares: the runtime, the job records,
// the attempts running here, the security driver and the migration ports (the
// reaper undoes an incoming migration with them).
import type { Logger } from 'pino';
import { ErrorType, vmError } from '../../common/errors.js';
import type { PortAllocator } from '../../migration/port-allocator.js';
import type { SecurityContext, SecurityDriver } from '../../security/index.js';
import type { FdLabeller } from '../../saveimage/pipe-label.js';
import type { HostRuntime } from '../host-runtime.js';
import { portsFor } from '../migration/ports.js';
import { JobAttempts } from './attempts.js';
import type { JobRecords, SaveJobRecord } from './records.js';
import type { HostJob } from '../domain-lock.js';
import type { StreamControl } from '../../saveimage/stream-control.js';
import type { Heartbeats } from '../../support/activity-heartbeat.js';
import { faultArmed, faultPoint } from '../../support/fault-points.js';

export interface JobDeps {
  rt: HostRuntime;
  log: Logger;
  records: JobRecords;
  attempts: JobAttempts;
  security: SecurityDriver;
  ports: PortAllocator;
  /** When non-empty, saves and dumps may write only below these directories (HostConfig.saveDirs). */
  allowedDirs: string[];
}

export function createJobDeps(rt: HostRuntime): JobDeps {
  return {
    rt,
    log: rt.log.child({ component: 'save' }),
    records: rt.jobs,
    attempts: new JobAttempts(),
    security: rt.security,
    ports: portsFor(rt),
    allowedDirs: rt.config.saveDirs,
  };
}

export function securityContext(name: string, uuid: string): SecurityContext {
  return { domain: name, uuid };
}

export function checkJobId(jobId: unknown): string {
  if (typeof jobId !== 'string' || jobId.length === 0) throw vmError(ErrorType.OperationInvalid, 'missing job id');
  return jobId;
}

export function fdLabeller(deps: JobDeps, ctx: SecurityContext): FdLabeller {
  return {
    labelFd: (fd) => deps.security.labelFd(fd, ctx),
    restoreFd: (fd) => deps.security.restoreFd(fd, ctx),
    onRestoreError: (err) => deps.log.warn({ domain: ctx.domain, err }, 'restoring the label of a stream pipe failed'),
  };
}

/**
 * What a save or restore stream reports to its job: the helpers it spawned go into
 * the job record (a restarted worker stops them), progress into the job and the
 * heartbeat, and, in tests, the stream's mid-stream fault point.
 */
export function jobStreamControl(
  deps: JobDeps,
  kind: 'save' | 'restore',
  rec: SaveJobRecord,
  job: HostJob,
  beats: Heartbeats,
  aborted: () => boolean,
): StreamControl {
  const point = kind === 'save' ? 'save.mid-stream' : 'restore.mid-stream';
  return {
    aborted,
    onHelpers: (helpers) => deps.records.update(rec, { helpers }),
    onProgress: (progress, status) => {
      job.progress = progress;
      beats.update({ progress, status });
    },
    midStream: faultArmed(point) ? () => faultPoint(point) : undefined,
  };
}
