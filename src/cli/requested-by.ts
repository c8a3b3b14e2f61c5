// Stamps every workflow this client starts with who asked (user@machine by default),
// for the hosts' audit log.
import { userInfo, hostname } from 'node:os';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import { REQUESTED_BY_HEADER, encodeRequestedBy } from '../common/requested-by.js';

/** Who asked, when VMFERRY_REQUESTED_BY does not say: the local user at this machine. */
export function defaultRequester(): string {
  return `${userInfo().username}@${hostname()}`;
}

export function requestedByInterceptor(who: string): WorkflowClientInterceptor {
  const header = { [REQUESTED_BY_HEADER]: encodeRequestedBy(who) };
  return {
    async startWithDetails(input, next) {
      return await next({ ...input, headers: { ...input.headers, ...header } });
    },
    async signalWithStart(input, next) {
      return await next({ ...input, headers: { ...input.headers, ...header } });
    },
  };
}
