// Every problem with an XML document leaves as one typed error whose message
// says where: an element path in libvirt's XPath style
// (/domain/devices/disk[2]/target/@dev) and, when the text is at hand, the line
// and column of the element in the input. Malformed or invalid XML is an
// XmlError; well-formed XML asking for something vmferry does not support is
// ConfigUnsupported, so a caller can tell a broken document from a refused one.
import type { ApplicationFailure } from '@temporalio/common';
import { ErrorType, isVmError, vmError } from '../common/errors.js';

export interface XmlWhere {
  /** Element path, XPath style, attributes as a last `@name` segment. */
  path?: string;
  /** 1-based line in the input text. */
  line?: number;
  /** 1-based column in the input text. */
  column?: number;
}

/** Looks up the input position of a path; only available while parsing text. */
export type XmlLocator = (path: string) => { line: number; column: number } | undefined;

export function xmlError(message: string, where?: XmlWhere, details?: Record<string, unknown>): ApplicationFailure {
  return locatedError(ErrorType.XmlError, message, where, details);
}

/** An error of any type about a place in a document, worded like xmlError. */
export function locatedError(type: ErrorType, message: string, where?: XmlWhere, details?: Record<string, unknown>): ApplicationFailure {
  const parts: string[] = [];
  if (where?.path !== undefined) parts.push(`at ${where.path}`);
  if (where?.line !== undefined) {
    parts.push(where.column !== undefined ? `(line ${where.line}, column ${where.column})` : `(line ${where.line})`);
  }
  const suffix = parts.length > 0 ? ` ${parts.join(' ')}` : '';
  return vmError(type, `${message}${suffix}`, {
    ...details,
    ...(where?.path !== undefined ? { path: where.path } : {}),
    ...(where?.line !== undefined ? { line: where.line } : {}),
    ...(where?.column !== undefined ? { column: where.column } : {}),
  });
}

/**
 * One path step: `name`, or `name[i]` (1-based) when the parent holds more than
 * one element of that name, the way libvirt's error messages and XPath count.
 */
export function pathStep(name: string, index: number, sameNameCount: number): string {
  return sameNameCount > 1 ? `${name}[${index + 1}]` : name;
}

/** Line and column (both 1-based) of a character offset. */
export function lineColumnAt(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = text.indexOf('\n'); i !== -1 && i < end; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: end - lineStart + 1 };
}

/**
 * Runs `read` and names the document in every typed error it throws
 * ("migration cookie: ..."), keeping type and details, so one reader can
 * serve several kinds of document.
 */
export function inDocument<T>(what: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!isVmError(err) || err.message.startsWith(what)) throw err;
    const details = err.details?.[0];
    throw vmError((err.type ?? ErrorType.InternalError) as ErrorType, `${what}: ${err.message}`, details as Record<string, unknown> | undefined);
  }
}
