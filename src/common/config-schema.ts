// The pieces every process's configuration is built from: how a variable's text
// becomes a typed value, and how a bad one is reported (by its name and what is
// wrong) before the process does anything. Each process reads its environment in
// one module (host worker, control worker, CLI, local dev scripts) and hands the
// typed values down; nothing below those modules looks at the environment.
import { z } from 'zod';

export class ConfigError extends Error {
  override readonly name: string = 'ConfigError';
}

/** The environment as the config modules see it: process.env, or a test's record. */
export type Env = Readonly<Record<string, string | undefined>>;

export type EnvShape = Record<string, z.ZodType<unknown, string | undefined>>;

/**
 * The variables `shape` names, parsed out of `env`. Every bad value is reported in one
 * error, each as `NAME="value": what is wrong`.
 */
export function parseEnv<S extends EnvShape>(shape: S, env: Env, fail: (message: string) => Error = (m) => new ConfigError(m)): z.output<z.ZodObject<S>> {
  const given: Record<string, string | undefined> = {};
  for (const name of Object.keys(shape)) given[name] = env[name];
  const r = z.object(shape).safeParse(given);
  if (r.success) return r.data;
  throw fail(
    r.error.issues
      .map((i) => {
        const name = String(i.path[0]);
        return `${name}=${JSON.stringify(given[name])}: ${i.message}`;
      })
      .join('; '),
  );
}

/** A setting read as "set and non-empty": an empty value counts as unset. */
export function optionalText(): z.ZodType<string | undefined, string | undefined> {
  return z
    .string()
    .optional()
    .transform((v) => (v === '' ? undefined : v));
}

/** A name or path: unset, or a non-empty value (an empty one is a mistake, not a default). */
export function text(): z.ZodType<string | undefined, string | undefined> {
  return z.string().min(1, 'must not be empty').optional();
}

/** Any value, the empty one included (the caller gives it a meaning). */
export function rawText(): z.ZodType<string | undefined, string | undefined> {
  return z.string().optional();
}

export interface NumberRule {
  integer?: boolean;
  /** Smallest value allowed; `above` instead for a strict bound. */
  min?: number;
  above?: number;
  max?: number;
  /** An empty value counts as unset (settings read as "set and non-empty"); otherwise it is refused. */
  blankIsUnset?: boolean;
}

function describe(rule: NumberRule): string {
  const kind = rule.integer ? 'an integer' : 'a number';
  if (rule.min !== undefined && rule.max !== undefined) return `${kind} from ${rule.min} to ${rule.max}`;
  if (rule.above !== undefined) return `${kind} > ${rule.above}`;
  if (rule.min !== undefined) return `${kind} >= ${rule.min}`;
  return kind;
}

export function checkNumber(n: number, rule: NumberRule): boolean {
  return (
    Number.isFinite(n) &&
    (!rule.integer || Number.isInteger(n)) &&
    (rule.min === undefined || n >= rule.min) &&
    (rule.above === undefined || n > rule.above) &&
    (rule.max === undefined || n <= rule.max)
  );
}

export function envNumber(rule: NumberRule): z.ZodType<number | undefined, string | undefined> {
  return z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || (rule.blankIsUnset && v.trim() === '')) return undefined;
      // Number() as before: "1e3" and " 42 " still read as numbers; "" and "abc" do not.
      const n = v.trim() === '' ? NaN : Number(v);
      if (checkNumber(n, rule)) return n;
      ctx.addIssue({ code: 'custom', message: `must be ${describe(rule)}` });
      return z.NEVER;
    });
}

/** A JSON file's number with the same rule as its variable. */
export function fileNumber(rule: NumberRule): z.ZodType<number, unknown> {
  return z.number().refine((n) => checkNumber(n, rule), `must be ${describe(rule)}`);
}

/** A value parsed by `parse`, whose thrown message becomes the variable's error. */
export function parsedText<T>(parse: (v: string | undefined) => T): z.ZodType<T, string | undefined> {
  return z
    .string()
    .optional()
    .transform((v, ctx) => {
      try {
        return parse(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Colon-separated key files, the first encrypting, all decrypting; unset or empty: no codec. */
const payloadKeyFiles = optionalText().transform((v, ctx) => {
  if (v === undefined) return undefined;
  const files = v.split(':').filter((p) => p.length > 0);
  if (files.length > 0) return files;
  ctx.addIssue({ code: 'custom', message: 'names no key file' });
  return z.NEVER;
});

/** The Temporal CLI's reading of a boolean, made strict: a value it would read as false by accident is refused. */
function envBool(): z.ZodType<boolean | undefined, string | undefined> {
  return optionalText().transform((v, ctx) => {
    if (v === undefined) return undefined;
    if (v === '1' || v === 'true') return true;
    if (v === '0' || v === 'false') return false;
    ctx.addIssue({ code: 'custom', message: 'must be true, false, 1 or 0' });
    return z.NEVER;
  });
}

/**
 * The Temporal CLI's connection variables (src/connection/temporal-settings.ts hands them to
 * @temporalio/envconfig once checked here), with the shorter TLS names older tools used.
 */
export const temporalConnectionEnvShape = {
  TEMPORAL_ADDRESS: text(),
  TEMPORAL_NAMESPACE: text(),
  TEMPORAL_API_KEY: optionalText(),
  TEMPORAL_PROFILE: optionalText(),
  TEMPORAL_CONFIG_FILE: optionalText(),
  TEMPORAL_TLS: envBool(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: optionalText(),
  TEMPORAL_TLS_CERT: optionalText(),
  TEMPORAL_TLS_CLIENT_CERT_DATA: optionalText(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: optionalText(),
  TEMPORAL_TLS_KEY: optionalText(),
  TEMPORAL_TLS_CLIENT_KEY_DATA: optionalText(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: optionalText(),
  TEMPORAL_TLS_CA: optionalText(),
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: optionalText(),
  TEMPORAL_TLS_SERVER_NAME: optionalText(),
  TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: envBool(),
};

/** Variables every process that talks to Temporal reads the same way. */
export const temporalEnvShape = {
  ...temporalConnectionEnvShape,
  VMFERRY_PAYLOAD_KEY_FILE: payloadKeyFiles,
};

/** Variables both workers read the same way. */
export const workerEnvShape = {
  ...temporalEnvShape,
  VMFERRY_LOG_LEVEL: z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  VMFERRY_METRICS_ADDRESS: optionalText(),
};
