// Reading and editing the XML inside a save image (libvirt's save-image-dumpxml
// and save-image-define), and the managed-save image of a domain (is there one,
// remove it). The XML is rewritten in place inside the header's data area; the
// memory stream after it is never read or written.
import { realpathSync } from 'node:fs';
import { ErrorType, vmError } from '../../common/errors.js';
import type { ManagedSaveState, SaveImageXmlResult } from '../../common/save-types.js';
import { formatDomainXml, parseDomainXml, pinMachineAlias, withoutSecrets } from '../../domain/index.js';
import { checkAbiStability, checkDestinationName } from '../../migration/abi-check.js';
import { readSaveHeader, rewriteSaveImageXml } from '../../saveimage/header.js';
import { checkImageSource, checkInsideDirs } from '../../saveimage/image-path.js';
import { hasManagedSave, managedSavePath, removeManagedSave } from '../../saveimage/managed-save.js';
import type { JobDeps } from './deps.js';

export function saveImageJobs(deps: JobDeps, recovered: Promise<void>) {
  const { rt } = deps;
  return {
    /** Graphics passwords are left out unless `securityInfo` (libvirt's save-image-dumpxml --security-info). */
    async saveImageDumpXml(path: string, opts: { securityInfo?: boolean } = {}): Promise<SaveImageXmlResult> {
      const p = checkImageSource(path);
      const xml = (await readSaveHeader(p)).domainXml;
      if (opts.securityInfo === true) return { path: p, xml };
      const def = parseDomainXml(xml);
      const shown = withoutSecrets(def);
      return { path: p, xml: shown === def ? xml : formatDomainXml(shown) };
    },

    /** Replaces the image's XML with an ABI-compatible edit of it (same name and UUID). */
    async saveImageDefineXml(path: string, xml: string): Promise<SaveImageXmlResult> {
      const p = checkImageSource(path);
      // The image is rewritten in place: the same confinement as writing it.
      checkInsideDirs(realpathSync(p), deps.allowedDirs);
      if (typeof xml !== 'string') throw vmError(ErrorType.OperationInvalid, 'save-image-define needs the new XML');
      const current = parseDomainXml((await readSaveHeader(p)).domainXml);
      const next = pinMachineAlias(parseDomainXml(xml), current.os.machine);
      checkDestinationName(next, current.name, undefined);
      checkAbiStability(next, current);
      const text = formatDomainXml(next);
      await rewriteSaveImageXml(p, text);
      return { path: p, xml: text };
    },

    async managedSaveInfo(name: string): Promise<ManagedSaveState> {
      await recovered;
      if (!rt.defs.has(name) && !rt.getRunning(name)) throw rt.notFound(name);
      return { name, path: managedSavePath(rt.config.stateDir, name), exists: hasManagedSave(rt.config.stateDir, name) };
    },

    async managedSaveRemove(name: string): Promise<ManagedSaveState> {
      await recovered;
      if (!rt.defs.has(name) && !rt.getRunning(name) && !hasManagedSave(rt.config.stateDir, name)) throw rt.notFound(name);
      // A managed save or managed start in progress owns the image.
      const holder = rt.locks.holder(name);
      if (holder !== undefined) throw vmError(ErrorType.DomainBusy, `domain '${name}' is busy with job ${holder}`, { domain: name, job: holder });
      const removed = removeManagedSave(rt.config.stateDir, name);
      return { name, path: managedSavePath(rt.config.stateDir, name), exists: false, removed };
    },
  };
}
