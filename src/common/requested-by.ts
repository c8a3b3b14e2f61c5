// Who asked for a job travels as a Temporal header: set by the client, copied by the
// workflow interceptor onto every activity it schedules, read by the host's audit log.
import { defaultPayloadConverter, type Payload } from '@temporalio/common';

export const REQUESTED_BY_HEADER = 'vmferry-requested-by';

export function encodeRequestedBy(who: string): Payload {
  return defaultPayloadConverter.toPayload(who);
}

export function decodeRequestedBy(headers: Record<string, Payload> | undefined): string | undefined {
  const p = headers?.[REQUESTED_BY_HEADER];
  if (!p) return undefined;
  const v = defaultPayloadConverter.fromPayload<unknown>(p);
  return typeof v === 'string' ? v : undefined;
}
