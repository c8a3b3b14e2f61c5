// What the save, restore and image activities of one host worker share.
import type { Logger } from 'pino';
import { ErrorType, vmError } from '../common/errors.js';
import type { SecurityContext, SecurityDriver } from '../security/index.js';
import type { FdLabeller } from '../saveimage/pipe-label.js';
import type { HostRuntime } from './host-runtime.js';
import { JobAttempts } from './job-attempts.js';
import { SaveJobRecords } from './save-job-record.js';

export interface SaveDeps {
  rt: HostRuntime;
  log: Logger;
  records: SaveJobRecords;
  attempts: JobAttempts;
  security: SecurityDriver;
  /** When non-empty, saves and dumps may write only below these directories (HostConfig.saveDirs). */
  allowedDirs: string[];
}

export function createSaveDeps(rt: HostRuntime): SaveDeps {
  return {
    rt,
    log: rt.log.child({ component: 'save' }),
    records: new SaveJobRecords(rt.config.stateDir),
    attempts: new JobAttempts(),
    security: rt.security,
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

export function fdLabeller(deps: SaveDeps, ctx: SecurityContext): FdLabeller {
  return {
    labelFd: (fd) => deps.security.labelFd(fd, ctx),
    restoreFd: (fd) => deps.security.restoreFd(fd, ctx),
    onRestoreError: (err) => deps.log.warn({ domain: ctx.domain, err }, 'restoring the label of a stream pipe failed'),
  };
}
