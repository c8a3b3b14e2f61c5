// virsh's save, restore, managedsave, managedsave-remove, save-image-dumpxml and
// save-image-define. Image paths name files on the host (--host / VMFERRY_HOST),
// not on the machine running the command, so they are passed on as given.
import { SAVE_FORMAT_NAMES, type ManagedSaveState, type RestoreResult, type SaveFormatName, type SaveResult } from '../../common/save-types.js';
import { mib, positionals, readXmlFile, runState, stringOpt, wholeNumber, type Opts } from '../args.js';
import { UsageError } from '../exit-codes.js';
import { followDomainJob } from '../domain-job.js';
import { domainInfo, imageDomain, requireHost, runShort, saveImageXml } from '../job-start.js';
import { type Verb, FLAG, VALUE } from '../verb.js';

const RUN_STATE = { running: FLAG, paused: FLAG } as const;
const FORMATS = SAVE_FORMAT_NAMES.join('|');

/** --format, or virsh's name for it, --image-format. */
function format(opts: Opts): SaveFormatName | undefined {
  const given = stringOpt(opts.format);
  const virsh = stringOpt(opts['image-format']);
  if (given !== undefined && virsh !== undefined && given !== virsh) throw new UsageError('--format and --image-format name the same thing; give one');
  const f = given ?? virsh;
  if (f === undefined) return undefined;
  if (!(SAVE_FORMAT_NAMES as readonly string[]).includes(f))
    throw new UsageError(`unknown save image format ${JSON.stringify(f)} (one of ${SAVE_FORMAT_NAMES.join(', ')})`);
  return f as SaveFormatName;
}

export const saveVerbs: Record<string, Verb> = {
  save: {
    summary: "save a domain's memory to a file on its host; the domain stops",
    usage: `vmferry save DOMAIN FILE [--bypass-cache] [--parallel-channels N] [--running|--paused] [--image-format ${FORMATS}] [--xml FILE] [--overwrite]`,
    options: {
      ...RUN_STATE,
      'bypass-cache': FLAG,
      'parallel-channels': VALUE,
      format: VALUE,
      'image-format': VALUE,
      xml: VALUE,
      overwrite: FLAG,
      verbose: FLAG,
    },
    async run(ctx, args, opts) {
      const [name, path] = positionals(args, 2, this.usage) as [string, string];
      const parallelChannels = wholeNumber(opts['parallel-channels'], '--parallel-channels');
      // --parallel-channels alone means a sparse image (the workflow says so); raw is the default otherwise.
      const input = {
        name,
        path,
        format: format(opts) ?? (parallelChannels === undefined ? 'raw' : undefined),
        ...(parallelChannels !== undefined ? { parallelChannels } : {}),
        bypassCache: opts['bypass-cache'] === true,
        overwrite: opts.overwrite === true,
        xml: readXmlFile(stringOpt(opts.xml)),
        ...runState(opts),
      };
      const host = requireHost(ctx.host);
      return await followDomainJob<SaveResult>(ctx, {
        resolve: () => domainInfo(ctx.client, host, name),
        workflow: 'save',
        input: (dom) => ({ host, domainUuid: dom.uuid, ...input }),
        label: () => `save ${name}`,
        report: (r) => ctx.out(`Domain '${name}' saved to ${r.path} (${r.format}, ${mib(r.sizeBytes)} in ${(r.durationMs / 1000).toFixed(1)} s)`),
      });
    },
  },

  restore: {
    summary: 'restore a domain from a save image on the host',
    usage: 'vmferry restore FILE [--bypass-cache] [--parallel-channels N] [--running|--paused] [--xml FILE]',
    options: { ...RUN_STATE, 'bypass-cache': FLAG, 'parallel-channels': VALUE, xml: VALUE, verbose: FLAG },
    async run(ctx, args, opts) {
      const [path] = positionals(args, 1, this.usage) as [string];
      const parallelChannels = wholeNumber(opts['parallel-channels'], '--parallel-channels');
      const input = {
        path,
        bypassCache: opts['bypass-cache'] === true,
        ...(parallelChannels !== undefined ? { parallelChannels } : {}),
        xml: readXmlFile(stringOpt(opts.xml)),
        ...runState(opts),
      };
      const host = requireHost(ctx.host);
      // The job is the domain's, and the domain is named by the image.
      return await followDomainJob<RestoreResult>(ctx, {
        resolve: () => imageDomain(ctx.client, host, path),
        workflow: 'restore',
        input: () => ({ host, ...input }),
        label: (dom) => `restore ${dom.name}`,
        report: (r) => ctx.out(`Domain '${r.domain.name}' restored from ${r.path} (${r.domain.state})`),
      });
    },
  },

  managedsave: {
    summary: 'save a domain to an image its host keeps; the next start restores it',
    usage: `vmferry managedsave DOMAIN [--bypass-cache] [--running|--paused] [--image-format ${FORMATS}]`,
    options: { ...RUN_STATE, 'bypass-cache': FLAG, format: VALUE, 'image-format': VALUE, verbose: FLAG },
    async run(ctx, args, opts) {
      const [name] = positionals(args, 1, this.usage) as [string];
      const input = { name, format: format(opts), bypassCache: opts['bypass-cache'] === true, ...runState(opts) };
      const host = requireHost(ctx.host);
      return await followDomainJob<SaveResult>(ctx, {
        resolve: () => domainInfo(ctx.client, host, name),
        workflow: 'managedSave',
        input: (dom) => ({ host, domainUuid: dom.uuid, ...input }),
        label: () => `managedsave ${name}`,
        report: (r) => ctx.out(`Domain '${name}' state saved by vmferry (${r.format}, ${mib(r.sizeBytes)})`),
      });
    },
  },

  'managedsave-remove': {
    summary: "remove a domain's managed save image",
    usage: 'vmferry managedsave-remove DOMAIN',
    async run(ctx, args) {
      const [name] = positionals(args, 1, this.usage) as [string];
      const host = requireHost(ctx.host);
      const r = await runShort<ManagedSaveState>(ctx.client, 'managedSaveRemove', host, `managedsave-remove-${name}`, { host, name });
      ctx.out(r.removed ? `Removed managedsave image for domain '${name}'` : `Domain '${name}' has no managed save image; removal skipped`);
      return r;
    },
  },

  'save-image-dumpxml': {
    summary: 'the domain XML inside a save image',
    usage: 'vmferry save-image-dumpxml FILE [--security-info]',
    options: { 'security-info': FLAG },
    async run(ctx, args, opts) {
      const [path] = positionals(args, 1, this.usage) as [string];
      const r = await saveImageXml(ctx.client, { host: requireHost(ctx.host), op: 'dumpxml', path, securityInfo: opts['security-info'] === true });
      ctx.out(r.xml.trimEnd());
      return r;
    },
  },

  'save-image-define': {
    summary: 'replace the domain XML inside a save image (ABI-compatible edits only)',
    usage: 'vmferry save-image-define FILE XMLFILE',
    async run(ctx, args) {
      const [path, xmlFile] = positionals(args, 2, this.usage) as [string, string];
      const xml = readXmlFile(xmlFile)!;
      const r = await saveImageXml(ctx.client, { host: requireHost(ctx.host), op: 'define', path, xml });
      ctx.out(`State file ${r.path} updated.`);
      return r;
    },
  },
};
