// save-image-dumpxml / save-image-define: read or replace the domain XML inside
// a save image on a host, without touching its memory stream.
import { upsertSearchAttributes } from '@temporalio/workflow';
import { ErrorType, vmError } from '../common/errors.js';
import { checkHost, checkPath, type SaveImageXmlInput, type SaveImageXmlResult } from '../common/save-types.js';
import { JobType, SourceHost } from '../common/search-attributes.js';
import { unwrapActivityError } from './activity-errors.js';
import { saveJobHost } from './save-job.js';

export async function saveImageXml(input: SaveImageXmlInput): Promise<SaveImageXmlResult> {
  const host = checkHost(input?.host);
  const path = checkPath(input.path);
  // Checked before the search attributes: an oversized op would fail every workflow task, not the workflow.
  if (input.op !== 'dumpxml' && input.op !== 'define') {
    throw vmError(ErrorType.OperationInvalid, `unknown save-image operation ${JSON.stringify(String((input as { op: unknown }).op).slice(0, 100))}`);
  }
  upsertSearchAttributes([
    { key: JobType, value: `save-image-${input.op}` },
    { key: SourceHost, value: host },
  ]);
  const { acts, begin } = saveJobHost(host);
  try {
    switch (input.op) {
      case 'dumpxml':
        return await acts.saveImageDumpXml.executeWithOptions({ ...begin, summary: `read the XML of ${path} on ${host}` }, [
          path,
          { securityInfo: input.securityInfo === true },
        ]);
      case 'define':
        if (typeof input.xml !== 'string') throw vmError(ErrorType.OperationInvalid, 'define needs xml');
        return await acts.saveImageDefineXml.executeWithOptions({ ...begin, summary: `replace the XML of ${path} on ${host}` }, [path, input.xml]);
      default:
        throw vmError(ErrorType.OperationInvalid, `unknown save-image operation ${JSON.stringify((input as { op: unknown }).op)}`);
    }
  } catch (err) {
    throw unwrapActivityError(err, { host, step: `save-image-${input.op}` });
  }
}
