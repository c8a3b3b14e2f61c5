// The shape of the table of what vmferry builds (built-elements.ts) and the
// small pieces its entries share; built-check.ts walks a definition against it.
import { childElements, getAttr, textContent } from '../xml/xml-edit.js';
import type { XmlElement } from '../xml/xml-tree.js';

/** An attribute: why it is fine, and when only some of libvirt's values are built, which. */
export type AttrRule = string | { why: string; values: readonly string[] };

export interface ElementRule {
  why: string;
  attrs?: Readonly<Record<string, AttrRule>>;
  children?: Readonly<Record<string, ElementRule>>;
  /**
   * Neither its attributes nor anything below are looked at: free-form content
   * nobody reads (metadata), or an element whose builder checks it whole.
   */
  opaque?: true;
  /**
   * The rule depends on an attribute's value (a device's type): a value not
   * listed is refused. `absent` is the value libvirt assumes when it is missing.
   */
  byAttr?: { attr: string; absent?: string; cases: Readonly<Record<string, ElementRule>> };
  /** A combination attributes alone cannot express: the reason it is refused, else undefined. */
  refuse?: (el: XmlElement) => string | undefined;
}

export const attr = (el: XmlElement | undefined, name: string): string | undefined => (el === undefined ? undefined : getAttr(el, name));
export const childNamed = (el: XmlElement, name: string): XmlElement | undefined => childElements(el, name)[0];
export const childNames = (el: XmlElement): string[] => childElements(el).map((c) => c.name);
export const textOf = textContent;

export const ALIAS: ElementRule = { why: 'QEMU device id; the guest does not see it', attrs: { name: 'the id' } };
export const EMPTY: ElementRule = { why: 'a flag element' };

/** Elements holding only text, read by the domain model and built from it. */
export const text = (why: string, attrs?: Record<string, AttrRule>): ElementRule => ({ why, ...(attrs ? { attrs } : {}) });
