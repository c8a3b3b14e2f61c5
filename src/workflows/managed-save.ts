// Managed save (libvirt's managedsave): the host keeps the image; the domain's
// next managedStart restores from it and removes it; managedSaveRemove drops it.
import { CancellationScope, upsertSearchAttributes } from '@temporalio/workflow';
import type { DomainInfo } from '../common/domain-types.js';
import {
  checkFormat,
  checkHost,
  checkName,
  checkRunState,
  type ManagedSaveInput,
  type ManagedSaveRemoveInput,
  type ManagedSaveState,
  type ManagedStartInput,
  type RestoreResult,
  type SaveResult,
} from '../common/save-types.js';
import { DomainName, JobType, SourceHost } from '../common/search-attributes.js';
import { unwrapActivityError } from './activity-errors.js';
import { openSaveJob, runSaveJob, saveJobHost } from './save-job.js';

export async function managedSave(input: ManagedSaveInput): Promise<SaveResult> {
  const host = checkHost(input?.host);
  const name = checkName(input.name);
  const format = checkFormat(input.format);
  checkRunState(input);
  const { jobId, tracker, hostJob } = openSaveJob('managedSave', host, name, input.domainUuid);
  const { acts } = hostJob;
  return await runSaveJob({
    tracker,
    hostJob,
    begin: () =>
      acts.saveBegin.executeWithOptions({ ...hostJob.begin, summary: `check managed save of '${name}' on ${host}` }, [
        {
          jobId,
          name,
          domainUuid: input.domainUuid,
          managed: true,
          format,
          overwrite: true,
          bypassCache: input.bypassCache === true,
          running: input.running,
          paused: input.paused,
        },
      ]),
    perform: (plan) => acts.savePerform.executeWithOptions({ ...hostJob.long, summary: `managed save of '${name}' (${format}) on ${host}` }, [plan]),
  });
}

/** Starts a persistent domain: from its managed-save image when it has one, else by booting it. */
export async function managedStart(input: ManagedStartInput): Promise<RestoreResult> {
  const host = checkHost(input?.host);
  const name = checkName(input.name);
  const { jobId, tracker, hostJob } = openSaveJob('managedStart', host, name, input.domainUuid);
  const { acts } = hostJob;
  const started = Date.now();
  let begun;
  try {
    begun = await CancellationScope.nonCancellable(() =>
      acts.managedStartBegin.executeWithOptions({ ...hostJob.begin, summary: `look for a managed save of '${name}' on ${host}` }, [
        { jobId, name, domainUuid: input.domainUuid, paused: input.paused, bypassCache: input.bypassCache === true, forceBoot: input.forceBoot === true },
      ]),
    );
  } catch (err) {
    throw tracker.fail(unwrapActivityError(err, { host, step: 'begin' }), 'begin');
  }
  const plan = begun.plan;
  if (plan) {
    return await runSaveJob({
      tracker,
      hostJob,
      begin: async () => plan,
      perform: (p) => acts.restorePerform.executeWithOptions({ ...hostJob.long, summary: `start '${name}' from its managed save on ${host}` }, [p]),
    });
  }
  tracker.phase('boot');
  let domain: DomainInfo;
  try {
    domain = await acts.startDomain.executeWithOptions({ ...hostJob.short, summary: `start '${name}' on ${host} (${begun.bootReason ?? 'no image'})` }, [
      name,
      { paused: input.paused === true },
    ]);
  } catch (err) {
    throw tracker.fail(unwrapActivityError(err, { host, step: 'boot' }), 'boot');
  }
  tracker.complete();
  return { domain, path: '', format: 'raw', durationMs: Date.now() - started, bootedFresh: true };
}

export async function managedSaveRemove(input: ManagedSaveRemoveInput): Promise<ManagedSaveState> {
  const host = checkHost(input?.host);
  const name = checkName(input.name);
  upsertSearchAttributes([
    { key: JobType, value: 'managedSaveRemove' },
    { key: SourceHost, value: host },
    { key: DomainName, value: name },
  ]);
  const { acts, begin } = saveJobHost(host);
  try {
    return await acts.managedSaveRemove.executeWithOptions({ ...begin, summary: `remove the managed save of '${name}' on ${host}` }, [name]);
  } catch (err) {
    throw unwrapActivityError(err, { host, step: 'managedSaveRemove' });
  }
}
