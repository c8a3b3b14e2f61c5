// Stable error types shared by activities, workflows and the CLI. Everything the
// user can see leaves as an ApplicationFailure whose `type` is one of these, so a
// caller can branch on it without parsing messages.
import { ApplicationFailure } from '@temporalio/common';

export const ErrorType = {
  OperationAborted: 'OperationAborted',
  OperationFailed: 'OperationFailed',
  OperationInvalid: 'OperationInvalid',
  ConfigUnsupported: 'ConfigUnsupported',
  MigrateUnsafe: 'MigrateUnsafe',
  DomainNotFound: 'DomainNotFound',
  DomainExists: 'DomainExists',
  DomainBusy: 'DomainBusy',
  /** A disk's lease is held by another domain (here or on another host): libvirt's "resource busy". */
  DiskLeaseHeld: 'DiskLeaseHeld',
  XmlError: 'XmlError',
  InternalError: 'InternalError',
  /** The QMP stream ended: QEMU exited or closed its monitor. */
  QemuGone: 'QemuGone',
  /** QEMU did not answer a QMP command within its deadline. */
  QmpTimeout: 'QmpTimeout',
  /** QEMU answered a QMP command with an error object. */
  QmpError: 'QmpError',
  /** What was asked of the guest did not happen in time (libvirt's operation timeout); nothing was forced. */
  OperationTimeout: 'OperationTimeout',
} as const;

export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

// A transient QEMU hiccup may pass; everything else is a statement about the
// request or the domain, and retrying it only repeats the same answer.
const RETRYABLE: ReadonlySet<ErrorType> = new Set([ErrorType.QmpTimeout]);

export function vmError(type: ErrorType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: !RETRYABLE.has(type),
    details: details === undefined ? undefined : [details],
  });
}

export function isVmError(err: unknown, type?: ErrorType): err is ApplicationFailure {
  return err instanceof ApplicationFailure && (type === undefined || err.type === type);
}
