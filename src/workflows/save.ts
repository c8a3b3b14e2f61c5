// save: a running or paused domain's memory to a file in libvirt's save-image
// layout; the domain is shut off afterwards. Run as jobWorkflowId(uuid).
import { checkHost, checkName, checkPath, checkRunState, checkSaveFormat, type SaveInput, type SaveResult } from '../common/save-types.js';
import { openSaveJob, runSaveJob } from './save-job.js';

export async function save(input: SaveInput): Promise<SaveResult> {
  const host = checkHost(input?.host);
  const name = checkName(input.name);
  const path = checkPath(input.path);
  const { format, parallelChannels } = checkSaveFormat(input.format, input.parallelChannels);
  checkRunState(input);
  const { jobId, tracker, hostJob } = openSaveJob('save', host, name, input.domainUuid);
  const { acts } = hostJob;
  return await runSaveJob({
    tracker,
    hostJob,
    begin: () =>
      acts.saveBegin.executeWithOptions({ ...hostJob.begin, summary: `check save of '${name}' to ${path} on ${host}` }, [
        {
          jobId,
          name,
          domainUuid: input.domainUuid,
          path,
          format,
          overwrite: input.overwrite === true,
          bypassCache: input.bypassCache === true,
          parallelChannels,
          xml: input.xml,
          running: input.running,
          paused: input.paused,
        },
      ]),
    perform: (plan) =>
      acts.savePerform.executeWithOptions(
        { ...hostJob.long, summary: `save '${name}' (${format}${parallelChannels ? `, ${parallelChannels} channels` : ''}) to ${path} on ${host}` },
        [plan],
      ),
  });
}
