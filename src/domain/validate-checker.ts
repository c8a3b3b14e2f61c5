// The small checking vocabulary shared by the validators: every failure is an
// error at a path, with line and column when a locator is at hand; XmlError
// for an invalid value, ConfigUnsupported for a valid request vmferry does not
// take.
import { ErrorType } from '../common/errors.js';
import { isOneOf } from './domain-model.js';
import { locatedError, xmlError, type XmlLocator } from '../xml/xml-errors.js';
import { findNonXmlChar } from '../xml/xml-safety.js';

const MAX_PATH_LENGTH = 4096;

export const CONTROL_CHAR = /[\u0000-\u001F\u007F]/;

export class Checker {
  constructor(private readonly locate?: XmlLocator) {}

  fail(message: string, path: string): never {
    throw xmlError(message, { path, ...(this.locate?.(path) ?? {}) });
  }

  /** Well-formed and valid for libvirt, but not something vmferry supports. */
  unsupported(message: string, path: string): never {
    throw locatedError(ErrorType.ConfigUnsupported, message, { path, ...(this.locate?.(path) ?? {}) });
  }

  str(v: unknown, path: string, what: string): string {
    if (typeof v !== 'string') this.fail(`${what} must be a string`, path);
    const bad = findNonXmlChar(v);
    if (bad) this.fail(`${what} contains a character XML cannot carry (U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')})`, path);
    return v;
  }

  optStr(v: unknown, path: string, what: string): void {
    if (v !== undefined) this.str(v, path, what);
  }

  pattern(v: unknown, re: RegExp, path: string, what: string): void {
    if (v === undefined) return;
    const s = this.str(v, path, what);
    if (!re.test(s)) this.fail(`invalid ${what} '${s}'`, path);
  }

  oneOf(values: readonly string[], v: unknown, path: string, what: string, required = false): void {
    if (v === undefined && !required) return;
    if (!isOneOf(values, v)) this.fail(`${what} '${String(v)}' is not one of ${values.join(', ')}`, path);
  }

  /** oneOf for a value where vmferry takes part of what libvirt knows: the rest is unsupported, not invalid. */
  supported(values: readonly string[], known: readonly string[] | RegExp, v: unknown, path: string, what: string, required = false): void {
    if (v === undefined && !required) return;
    if (isOneOf(values, v)) return;
    const message = `${what} '${String(v)}' is not one of ${values.join(', ')}`;
    const isKnown = typeof v === 'string' && (known instanceof RegExp ? known.test(v) : known.includes(v));
    if (isKnown) this.unsupported(message, path);
    this.fail(message, path);
  }

  int(v: unknown, min: number, max: number, path: string, what: string): void {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(`${what} must be an integer, got ${String(v)}`, path);
    if (v < min || v > max) this.fail(`${what} ${v} is out of range ${min}..${max}`, path);
  }

  optInt(v: unknown, min: number, max: number, path: string, what: string): void {
    if (v !== undefined) this.int(v, min, max, path, what);
  }

  bool(v: unknown, path: string, what: string): void {
    if (typeof v !== 'boolean') this.fail(`${what} must be true or false`, path);
  }

  absPath(v: unknown, path: string, what: string): void {
    if (v === undefined) return;
    const s = this.str(v, path, what);
    if (!s.startsWith('/')) this.fail(`${what} '${s}' must be an absolute path`, path);
    if (s.length > MAX_PATH_LENGTH || CONTROL_CHAR.test(s)) this.fail(`${what} is not a usable path`, path);
  }

  list<T>(v: unknown, path: string, what: string): T[] {
    if (!Array.isArray(v)) this.fail(`${what} must be a list`, path);
    return v as T[];
  }

  object(v: unknown, path: string, what: string): void {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(`${what} must be an object`, path);
  }
}

/** Checks a definition (for example one edited in code); throws XmlError. */
