// Strict readers used while turning the tree into the model: each failure is an
// XmlError naming the path (and, while parsing text, the line and column).
import type { ErrorType } from '../common/errors.js';
import type { XmlLocator, XmlWhere } from './xml-errors.js';
import { locatedError, pathStep, xmlError } from './xml-errors.js';
import { childElements, getAttr, hasElementChildren, textContent } from './xml-edit.js';
import type { XmlElement } from './xml-tree.js';

export class XmlReader {
  constructor(private readonly locator?: XmlLocator) {}

  where(path: string): XmlWhere {
    return { path, ...(this.locator?.(path) ?? {}) };
  }

  fail(message: string, path: string, details?: Record<string, unknown>): never {
    throw xmlError(message, this.where(path), details);
  }

  /** A well-formed document refused for another reason (unsupported, not for us, ...). */
  refuse(type: ErrorType, message: string, path: string, details?: Record<string, unknown>): never {
    throw locatedError(type, message, this.where(path), details);
  }

  /** The only child of that name, undefined when absent; two or more is an error. */
  optional(parent: XmlElement, name: string, parentPath: string): XmlElement | undefined {
    const found = childElements(parent, name);
    if (found.length > 1) this.fail(`<${name}> may appear only once, found ${found.length}`, `${parentPath}/${pathStep(name, 1, found.length)}`);
    return found[0];
  }

  required(parent: XmlElement, name: string, parentPath: string): XmlElement {
    const el = this.optional(parent, name, parentPath);
    if (el === undefined) this.fail(`missing <${name}> element`, `${parentPath}/${name}`);
    return el;
  }

  /** Character data of an element that must not hold child elements. */
  text(el: XmlElement, path: string): string {
    if (hasElementChildren(el)) this.fail(`<${el.name}> must contain text only`, path);
    return textContent(el);
  }

  attr(el: XmlElement, name: string): string | undefined {
    return getAttr(el, name);
  }

  requiredAttr(el: XmlElement, name: string, path: string): string {
    const v = getAttr(el, name);
    if (v === undefined) this.fail(`missing attribute '${name}'`, `${path}/@${name}`);
    return v;
  }

  /** A decimal integer (surrounding blanks allowed), within the safe range. */
  integer(text: string, path: string, what: string): number {
    const t = text.trim();
    if (!/^[+-]?[0-9]{1,15}$/.test(t)) this.fail(`${what} '${text}' is not an integer`, path);
    return Number.parseInt(t, 10);
  }

  /** A plain decimal integer (no blanks, no '+') in min..max, the way machine-written values look. */
  strictInteger(text: string, path: string, what: string, min: number, max: number): number {
    if (!/^-?[0-9]{1,20}$/.test(text)) this.fail(`${what} '${text.slice(0, 40)}' is not an integer`, path);
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min || n > max) this.fail(`${what} ${text} is out of range ${min}..${max}`, path);
    return n;
  }

  optionalIntAttr(el: XmlElement, name: string, path: string, what: string): number | undefined {
    const v = getAttr(el, name);
    return v === undefined ? undefined : this.integer(v, `${path}/@${name}`, what);
  }

  yesNo(el: XmlElement, name: string, path: string): boolean | undefined {
    const v = getAttr(el, name);
    if (v === undefined) return undefined;
    if (v === 'yes') return true;
    if (v === 'no') return false;
    return this.fail(`attribute '${name}' must be 'yes' or 'no', got '${v}'`, `${path}/@${name}`);
  }
}

/** Element children (of one name, or all) with their paths, `[i]` counted per name as XPath does. */
export function childrenWithPaths(parent: XmlElement, parentPath: string, name?: string): [XmlElement, string][] {
  const kids = childElements(parent, name);
  const totals = new Map<string, number>();
  for (const k of kids) totals.set(k.name, (totals.get(k.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  return kids.map((k) => {
    const i = seen.get(k.name) ?? 0;
    seen.set(k.name, i + 1);
    return [k, `${parentPath}/${pathStep(k.name, i, totals.get(k.name) ?? 1)}`];
  });
}

/** Runs a reader and gives undefined instead of an error (for comparisons while formatting). */
export function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
