import type { Client } from '@temporalio/client';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/** A flag (`--live`) and an option with a value (`--format zstd`): what most verbs' options are. */
export const FLAG = { type: 'boolean' } as const;
export const VALUE = { type: 'string' } as const;

export interface VerbContext {
  client: Client;
  /** The host the verb acts on (--host, VMFERRY_HOST). */
  host?: string;
  /** VMFERRY_PAYLOAD_KEY_FILE's files, for verbs that encode or decode payloads themselves. */
  payloadKeyFiles?: string[];
  json: boolean;
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface Verb {
  summary: string;
  usage: string;
  options?: OptionSpec;
  /** Runs without a Temporal connection (ctx.client must not be used). */
  local?: boolean;
  /** Returns what --json prints; human output is written through ctx.out. */
  run(ctx: VerbContext, args: string[], opts: Record<string, string | boolean | string[] | undefined>): Promise<unknown>;
}
