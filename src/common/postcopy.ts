// Post-copy as libvirt runs it, shared by the migrate workflow, the host activities
// and the CLI: the switch on request (Update `startPostcopy`, virsh's
// migrate-postcopy), the wait for the stream's end after Finish, and recovery of a
// stream whose link broke (Update `recoverPostcopy`, virsh's migrate-recover).
import { defineUpdate } from '@temporalio/workflow';
import type { MigrationStats } from './migration-types.js';

/**
 * Where a post-copy migration stands, as jobInfo shows it: `requested` (the switch
 * was asked for, QEMU has not switched yet), `active` (the guest runs on the
 * destination and pulls the pages it lacks), `paused` (the link broke: both QEMUs
 * wait in postcopy-paused), `recovering` (a recovery attempt is under way),
 * `completed`, `failed` (the guest stays paused on the destination).
 */
export type PostcopyState = 'requested' | 'active' | 'paused' | 'recovering' | 'completed' | 'failed';

export interface StartPostcopyResult {
  postcopy: PostcopyState;
}

export interface RecoverPostcopyRequest {
  /** Where the destination listens for the resumed stream and the source dials, tcp:HOST[:PORT]; default: the destination's migration address. */
  uri?: string;
}

export interface RecoverPostcopyResult {
  postcopy: PostcopyState;
  /** Recovery attempts so far (this one included). */
  attempt: number;
}

/** Switch a running migration started with 'postcopy' to post-copy now. */
export const startPostcopyUpdate = defineUpdate<StartPostcopyResult, []>('startPostcopy');
/** Try to recover a paused post-copy stream now, optionally through another destination address (send {} for none). */
export const recoverPostcopyUpdate = defineUpdate<RecoverPostcopyResult, [RecoverPostcopyRequest]>('recoverPostcopy');

const MAX_URI_CHARS = 1024;

/** Why a recovery request is malformed, or undefined; the destination parses the URI itself too. */
export function invalidRecoverRequest(r: unknown): string | undefined {
  if (r === undefined || r === null) return undefined;
  if (typeof r !== 'object' || Array.isArray(r)) return 'a recovery request is an object { uri? }';
  const uri = (r as RecoverPostcopyRequest).uri;
  if (uri === undefined) return undefined;
  if (typeof uri !== 'string' || uri.length === 0 || uri.length > MAX_URI_CHARS || !/^tcp:\S+$/.test(uri)) {
    return `the recovery URI must be tcp:HOST[:PORT] (at most ${MAX_URI_CHARS} characters), got ${JSON.stringify(uri)?.slice(0, 100)}`;
  }
  return undefined;
}

/** The source's answer while it waits for a post-copy stream to end. */
export interface PostcopyWaitResult {
  status: 'completed' | 'paused';
  /** completed: QEMU's final figures. */
  stats?: MigrationStats;
  /** paused: why (QEMU's error, or the stall the source noticed and paused on). */
  reason?: string;
  /** The stream ran again (postcopy-active) during this wait: an earlier recovery worked. */
  ranAgain?: boolean;
}

/** Where the destination listens for the resumed stream. */
export interface PostcopyRecoverListen {
  uri: string;
}
