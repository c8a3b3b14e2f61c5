// Reading and editing helpers over the ordered tree. Edits touch only what
// changes: an attribute or text whose decoded value is already the wanted one
// keeps its raw spelling, new children go where libvirt would write them
// (a canonical order per parent) with the indentation their siblings use.
import type { XmlElement, XmlNode, XmlText } from './xml-tree.js';
import { encodeXmlAttr, encodeXmlText, tryDecodeXmlAttr, tryDecodeXmlRaw } from './xml-text.js';

const INDENT_UNIT = '  ';

export function createElement(name: string): XmlElement {
  return { kind: 'element', name, attrs: [], children: [] };
}

function isElementLike(n: XmlNode): n is XmlElement | { kind: 'slot'; name: string } {
  return n.kind === 'element' || n.kind === 'slot';
}

export function isBlank(n: XmlNode | undefined): n is XmlText {
  return n !== undefined && n.kind === 'text' && /^[ \t\n]*$/.test(n.raw);
}

export function childElements(el: XmlElement, name?: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const c of el.children) if (c.kind === 'element' && (name === undefined || c.name === name)) out.push(c);
  return out;
}

export function findChild(el: XmlElement, name: string): XmlElement | undefined {
  for (const c of el.children) if (c.kind === 'element' && c.name === name) return c;
  return undefined;
}

export function getAttr(el: XmlElement, name: string): string | undefined {
  const a = el.attrs.find((x) => x.name === name);
  return a === undefined ? undefined : (tryDecodeXmlAttr(a.raw) ?? a.raw);
}

export function hasElementChildren(el: XmlElement): boolean {
  return el.children.some(isElementLike);
}

/** Decoded character data of an element (text and CDATA, comments skipped). */
export function textContent(el: XmlElement): string {
  let s = '';
  for (const c of el.children) {
    if (c.kind === 'text') s += tryDecodeXmlRaw(c.raw) ?? c.raw;
    else if (c.kind === 'cdata') s += c.text;
  }
  return s;
}

/** Sets (or with undefined removes) an attribute; an equal value keeps its spelling. */
export function setAttr(el: XmlElement, name: string, value: string | undefined): void {
  const i = el.attrs.findIndex((x) => x.name === name);
  if (value === undefined) {
    if (i !== -1) el.attrs.splice(i, 1);
    return;
  }
  const existing = el.attrs[i];
  if (existing !== undefined) {
    if (tryDecodeXmlAttr(existing.raw) !== value) existing.raw = encodeXmlAttr(value);
  } else {
    el.attrs.push({ name, raw: encodeXmlAttr(value) });
  }
}

/** Replaces the content by one text node, unless it already reads the same. */
export function setText(el: XmlElement, value: string): void {
  if (!hasElementChildren(el) && textContent(el) === value) return;
  el.children = value === '' ? [] : [{ kind: 'text', raw: encodeXmlText(value) }];
}

/** Indentation for a child of `parent` (at `depth`, root = 0), or undefined for compact XML. */
function childIndent(parent: XmlElement, depth: number): string | undefined {
  const kids = parent.children;
  for (let i = 0; i < kids.length; i++) {
    const k = kids[i];
    if (k !== undefined && isElementLike(k)) {
      const prev = kids[i - 1];
      if (isBlank(prev) && prev.raw.includes('\n')) return prev.raw.slice(prev.raw.lastIndexOf('\n'));
      return undefined;
    }
  }
  if (kids.every(isBlank)) return `\n${INDENT_UNIT.repeat(depth + 1)}`;
  return undefined;
}

/**
 * Inserts `child` into `parent` after the last sibling that comes no later in
 * `order` (libvirt's element order for that parent); unknown names append.
 */
export function insertChild(parent: XmlElement, child: XmlElement, depth: number, order: readonly string[]): void {
  const kids = parent.children;
  const indent = childIndent(parent, depth);
  const ws = (): XmlNode[] => (indent === undefined ? [] : [{ kind: 'text', raw: indent }]);

  if (!kids.some(isElementLike)) {
    if (kids.every(isBlank)) {
      const closing = kids.length > 0 ? kids : indent === undefined ? [] : [{ kind: 'text' as const, raw: `\n${INDENT_UNIT.repeat(depth)}` }];
      parent.children = [...ws(), child, ...closing];
    } else {
      kids.push(child);
    }
    return;
  }

  const rank = order.indexOf(child.name);
  let anchor = -1;
  let firstLater = -1;
  let lastElement = -1;
  kids.forEach((k, i) => {
    if (!isElementLike(k)) return;
    lastElement = i;
    const r = order.indexOf(k.name);
    if (rank !== -1 && r !== -1 && r <= rank) anchor = i;
    if (rank !== -1 && r > rank && firstLater === -1) firstLater = i;
  });
  if (anchor === -1 && firstLater !== -1) {
    kids.splice(firstLater, 0, child, ...ws());
    return;
  }
  const after = anchor !== -1 ? anchor : lastElement;
  kids.splice(after + 1, 0, ...ws(), child);
}

/** Removes a child node together with the indentation in front of it. */
export function removeChild(parent: XmlElement, child: XmlNode): void {
  const i = parent.children.indexOf(child);
  if (i === -1) return;
  const prev = parent.children[i - 1];
  if (isBlank(prev)) parent.children.splice(i - 1, 2);
  else parent.children.splice(i, 1);
  if (parent.children.every(isBlank)) parent.children = [];
}

/** The named child, created in canonical position when missing. */
export function ensureChild(parent: XmlElement, name: string, depth: number, order: readonly string[]): XmlElement {
  const found = findChild(parent, name);
  if (found !== undefined) return found;
  const el = createElement(name);
  insertChild(parent, el, depth, order);
  return el;
}

/**
 * Keeps a child in step with a model value: removed when the value is
 * undefined, otherwise found (or created in canonical position) and handed to
 * `write` with the value.
 */
export function syncChild<T>(
  parent: XmlElement,
  name: string,
  value: T | undefined,
  depth: number,
  order: readonly string[],
  write: (el: XmlElement, value: T) => void,
): void {
  if (value === undefined) {
    const found = findChild(parent, name);
    if (found !== undefined) removeChild(parent, found);
    return;
  }
  write(ensureChild(parent, name, depth, order), value);
}

/** `<name attr='value'/>` inside parent, the child removed (with whatever else it held) when value is undefined. */
export function setChildAttr(parent: XmlElement, name: string, attr: string, value: string | undefined, depth: number, order: readonly string[]): void {
  syncChild(parent, name, value, depth, order, (el, v) => setAttr(el, attr, v));
}

/** Sets the text of a child element, creating it, or removing it for undefined. */
export function setChildText(parent: XmlElement, name: string, value: string | undefined, depth: number, order: readonly string[]): void {
  const found = findChild(parent, name);
  if (value === undefined) {
    if (found !== undefined) removeChild(parent, found);
    return;
  }
  setText(found ?? ensureChild(parent, name, depth, order), value);
}

/** Removes every element child of a given name. */
export function removeChildren(parent: XmlElement, name: string): void {
  for (const c of childElements(parent, name)) removeChild(parent, c);
}

/** Sets an integer attribute; one that already reads as the same number keeps its spelling. */
export function setIntAttr(el: XmlElement, name: string, value: number | undefined): void {
  const cur = getAttr(el, name);
  if (value !== undefined && cur !== undefined && /^\s*[+-]?[0-9]+\s*$/.test(cur) && Number(cur) === value) return;
  setAttr(el, name, value === undefined ? undefined : String(value));
}

/**
 * Attributes the model owns on a child element: each set (numbers keep their
 * spelling, as setIntAttr) or removed when undefined. The child is made only when
 * a value needs it, and removed when nothing is left in it; its other content stays.
 */
export function syncChildAttrs(
  parent: XmlElement,
  name: string,
  attrs: Record<string, string | number | undefined>,
  depth: number,
  order: readonly string[],
): void {
  const found = findChild(parent, name);
  const values = Object.entries(attrs);
  if (found === undefined && values.every(([, v]) => v === undefined)) return;
  const el = found ?? ensureChild(parent, name, depth, order);
  for (const [attr, v] of values) {
    if (typeof v === 'number') setIntAttr(el, attr, v);
    else setAttr(el, attr, v);
  }
  removeIfEmpty(parent, el);
}

/** Removes `el` from `parent` when it has neither attributes nor content left. */
export function removeIfEmpty(parent: XmlElement, el: XmlElement): void {
  if (el.attrs.length === 0 && el.children.length === 0) removeChild(parent, el);
}

/** Makes a flag element (<readonly/>) present or absent. */
export function setFlagChild(parent: XmlElement, name: string, on: boolean, depth: number, order: readonly string[]): void {
  const found = findChild(parent, name);
  if (on && found === undefined) insertChild(parent, createElement(name), depth, order);
  if (!on && found !== undefined) removeChild(parent, found);
}
