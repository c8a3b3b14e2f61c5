// Distinct exit codes so scripts can tell "you asked wrong" from "it broke" from "it was aborted".
import { ErrorType } from '../common/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_INVALID = 2;
export const EXIT_ABORTED = 3;

const INVALID: ReadonlySet<string> = new Set([
  ErrorType.OperationInvalid,
  ErrorType.XmlError,
  ErrorType.DomainNotFound,
  ErrorType.DomainExists,
  ErrorType.DomainBusy,
  ErrorType.DiskLeaseHeld,
  ErrorType.ConfigUnsupported,
  ErrorType.MigrateUnsafe,
]);

export function exitCodeFor(errorType: string | undefined): number {
  if (errorType === ErrorType.OperationAborted) return EXIT_ABORTED;
  if (errorType !== undefined && INVALID.has(errorType)) return EXIT_INVALID;
  return EXIT_FAILED;
}

/** A mistake on the command line itself. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  /** The usage text shown after the message on stderr (not part of the --json error). */
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}
