// vmferry: a virsh-like command line on Temporal. Verbs start or signal workflows;
// --json prints machine-readable results; exit codes separate invalid input (2),
// failure (1) and abort (3).
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { domainVerbs } from './commands/domain.js';
import { dumpVerb } from './commands/dump.js';
import { hostVerbs } from './commands/host.js';
import { hostShutdownVerb } from './commands/host-shutdown.js';
import { jobVerbs } from './commands/jobs.js';
import { codecServerVerb } from './commands/codec-server.js';
import { migrateVerb } from './commands/migrate.js';
import { saveVerbs } from './commands/save.js';
import { startVerb } from './commands/start.js';
import { parseCommandLine } from './command-line.js';
import { loadCliConfig } from './cli-config.js';
import { connect } from './connection.js';
import { TemporalConnectError } from '../connection/temporal-connect.js';
import { TemporalConfigError } from '../connection/temporal-settings.js';
import { EXIT_FAILED, EXIT_INVALID, EXIT_OK, exitCodeFor, UsageError } from './exit-codes.js';
import { type OptionSpec, type Verb, FLAG, VALUE } from './verb.js';

const GLOBAL_OPTIONS: OptionSpec = {
  address: VALUE,
  namespace: { type: 'string', short: 'n' },
  profile: VALUE,
  'config-file': VALUE,
  'api-key': VALUE,
  'tls-cert-path': VALUE,
  'tls-key-path': VALUE,
  'tls-ca-path': VALUE,
  'tls-server-name': VALUE,
  host: { type: 'string', short: 'H' },
  json: FLAG,
  help: { type: 'boolean', short: 'h' },
};

const VERBS: Record<string, Verb> = {
  ...domainVerbs,
  start: startVerb,
  ...saveVerbs,
  dump: dumpVerb,
  migrate: migrateVerb,
  ...jobVerbs,
  ...hostVerbs,
  'host-shutdown': hostShutdownVerb,
  'codec-server': codecServerVerb,
};

function usage(): string {
  const verbs = Object.entries(VERBS).map(([name, v]) => `  ${name.padEnd(26)}${v.summary}`);
  return [
    'usage: vmferry [--profile NAME] [--address HOST:PORT] [--namespace NS] [--host NAME] [--json] VERB [ARGS]',
    '',
    "Connection, as the Temporal CLI's: --profile/TEMPORAL_PROFILE of --config-file/TEMPORAL_CONFIG_FILE",
    '(default ~/.config/temporalio/temporal.toml), --address/TEMPORAL_ADDRESS, --namespace/TEMPORAL_NAMESPACE,',
    '--api-key/TEMPORAL_API_KEY, --tls-cert-path, --tls-key-path, --tls-ca-path, --tls-server-name (or the',
    'TEMPORAL_TLS_* variables); an option wins over a variable, which wins over the profile. Host: --host or VMFERRY_HOST.',
    '',
    'Verbs:',
    ...verbs,
    '',
    'Exit codes: 0 ok, 1 failed, 2 invalid input, 3 aborted.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const verbIndex = argv.findIndex((a) => !a.startsWith('-') && VERBS[a] !== undefined);
  const verbName = verbIndex >= 0 ? argv[verbIndex]! : undefined;
  const verb = verbName ? VERBS[verbName] : undefined;
  const rest = verbIndex >= 0 ? [...argv.slice(0, verbIndex), ...argv.slice(verbIndex + 1)] : argv;
  let parsed;
  try {
    parsed = parseCommandLine(rest, { ...GLOBAL_OPTIONS, ...(verb?.options ?? {}) });
  } catch (err) {
    throw new UsageError((err as Error).message, verb ? `usage: ${verb.usage}` : usage());
  }
  const opts = parsed.values;
  if (opts.help) {
    process.stdout.write(`${verb ? `usage: ${verb.usage}` : usage()}\n`);
    return EXIT_OK;
  }
  if (!verb) throw new UsageError(parsed.positionals[0] !== undefined ? `unknown verb ${JSON.stringify(parsed.positionals[0])}` : 'no verb given', usage());
  const json = opts.json === true;
  const out = (line: string): void => void (json ? undefined : process.stdout.write(`${line}\n`));
  const err = (line: string): void => void process.stderr.write(`${line}\n`);
  const config = loadCliConfig();
  const host = (opts.host as string | undefined) ?? config.host;
  const payloadKeyFiles = config.payloadKeyFiles;
  if (verb.local) {
    // No server needed (codec-server): no connection to fail on or to hold open.
    const result = await verb.run({ client: undefined as never, host, payloadKeyFiles, json, out, err }, parsed.positionals, opts);
    if (json) process.stdout.write(`${JSON.stringify(result ?? null, null, 2)}\n`);
    return EXIT_OK;
  }
  const str = (name: string): string | undefined => opts[name] as string | undefined;
  const settings = config.temporal({
    profile: str('profile'),
    configFile: str('config-file'),
    overrides: {
      address: str('address'),
      namespace: str('namespace'),
      apiKey: str('api-key'),
      tlsCertPath: str('tls-cert-path'),
      tlsKeyPath: str('tls-key-path'),
      tlsCaPath: str('tls-ca-path'),
      tlsServerName: str('tls-server-name'),
    },
  });
  const { client, close } = await connect(settings, { payloadKeyFiles, requestedBy: config.requestedBy });
  try {
    const result = await verb.run({ client, host, payloadKeyFiles, json, out, err }, parsed.positionals, opts);
    if (json) process.stdout.write(`${JSON.stringify(result ?? null, null, 2)}\n`);
    return EXIT_OK;
  } finally {
    await close();
  }
}

function report(err: unknown, json: boolean): number {
  let type: string | undefined;
  let message: string;
  if (err instanceof UsageError) {
    type = 'OperationInvalid';
    message = err.message;
  } else if (err instanceof TemporalConfigError) {
    type = err.type;
    message = err.message;
  } else if (err instanceof TemporalConnectError) {
    type = 'OperationFailed';
    message = err.message;
  } else if ((err instanceof WorkflowFailedError || err instanceof WorkflowUpdateFailedError) && err.cause instanceof ApplicationFailure) {
    type = err.cause.type ?? undefined;
    message = err.cause.message;
  } else if (err instanceof ApplicationFailure) {
    type = err.type ?? undefined;
    message = err.message;
  } else {
    message = err instanceof Error ? err.message : String(err);
  }
  if (json) process.stdout.write(`${JSON.stringify({ error: { type: type ?? 'InternalError', message } }, null, 2)}\n`);
  process.stderr.write(`error: ${type ? `${type}: ` : ''}${message}\n${err instanceof UsageError && err.usage ? `${err.usage}\n` : ''}`);
  return err instanceof UsageError ? EXIT_INVALID : type ? exitCodeFor(type) : EXIT_FAILED;
}

// `vmferry dominfo D | head`: the reader left, which is no failure of the command (as for any Unix tool).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const argv = process.argv.slice(2);
process.exitCode = await main(argv).catch((err: unknown) => report(err, argv.includes('--json')));
