// The comparison primitives of the ABI stability check (abi-check.ts): each
// refusal is ConfigUnsupported naming the field, with the destination's and the
// source's value, so the caller knows what to put back.
import { ErrorType, vmError } from '../common/errors.js';
import type { DeviceAddress, DomainDef, TreeForm, XmlElement } from '../domain/index.js';
import { childElements, findChild, getAttr, textContent } from '../xml/xml-edit.js';

export function mismatch(what: string, dest: unknown, src: unknown): Error {
  const show = (v: unknown): string => (v === undefined ? 'none' : typeof v === 'string' ? `'${v}'` : JSON.stringify(v));
  return vmError(ErrorType.ConfigUnsupported, `target domain ${what} ${show(dest)} does not match source ${show(src)}`, {
    what,
    destination: dest ?? null,
    source: src ?? null,
  });
}

export function same(what: string, dest: unknown, src: unknown): void {
  if (JSON.stringify(dest) !== JSON.stringify(src)) throw mismatch(what, dest, src);
}

export function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

export function sameAddress(what: string, dest: DeviceAddress | undefined, src: DeviceAddress | undefined): void {
  // An address only one side spells out is assigned the same way on both (libvirt's order, domain/assign-addresses.ts).
  if (dest === undefined || src === undefined) return;
  same(`${what} address`, sortKeys(dest), sortKeys(src));
}

/** Same number of items, then `each` on the pairs in order: the guest enumerates devices by position. */
export function sameList<T>(what: string, dest: readonly T[], src: readonly T[], each: (d: T, s: T, i: number) => void): void {
  same(`${what} count`, dest.length, src.length);
  dest.forEach((d, i) => each(d, src[i]!, i));
}

export function attrsOf(el: XmlElement, skip: readonly string[] = []): Record<string, string> {
  return sortKeys(Object.fromEntries(el.attrs.filter((a) => !skip.includes(a.name)).map((a) => [a.name, getAttr(el, a.name) ?? a.raw])));
}

/** An element as plain data (name, attributes, text, children in order), for comparing parts that are all guest-visible. */
export function elementData(el: XmlElement): unknown {
  const kids = childElements(el);
  const text = kids.length === 0 ? textContent(el).trim() : '';
  return { name: el.name, attrs: attrsOf(el), ...(text === '' ? {} : { text }), ...(kids.length === 0 ? {} : { children: kids.map(elementData) }) };
}

/** The preserved `<domain>` element (unmodelled parts and in-document device families), if the definition came from XML. */
export function preservedRoot(def: DomainDef<TreeForm>): XmlElement | undefined {
  return def.preserved?.find((n): n is XmlElement => n.kind === 'element' && n.name === 'domain');
}

export function childAt(el: XmlElement | undefined, ...path: string[]): XmlElement | undefined {
  for (const p of path) el = el === undefined ? undefined : findChild(el, p);
  return el;
}
