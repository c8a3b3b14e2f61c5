// Walks a definition against the table of what vmferry builds (built-elements.ts)
// and refuses the first element, attribute or value that is not there with
// ConfigUnsupported naming its path. Runs at define, start, restore and
// migration Prepare, before anything is written or spawned, and again on the
// command line's way to QEMU: nothing in a definition is dropped silently.
import { ErrorType } from '../common/errors.js';
import { DOMAIN_RULE, type AttrRule, type ElementRule } from './built-elements.js';
import type { DomainDef } from './domain-model.js';
import { formatDomainXml } from './domain-format.js';
import { childElements, getAttr } from '../xml/xml-edit.js';
import { locatedError, pathStep, type XmlLocator } from '../xml/xml-errors.js';
import { checkXmlInput } from '../xml/xml-safety.js';
import { parseXmlDocument, type XmlElement } from '../xml/xml-tree.js';

function own<T>(table: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return table !== undefined && Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

/** Namespace declarations say how names are spelled, never what the guest gets. */
function isNamespaceDeclaration(name: string): boolean {
  return name === 'xmlns' || name.startsWith('xmlns:');
}

class Walk {
  constructor(private readonly locate?: XmlLocator) {}

  refuse(message: string, path: string): never {
    throw locatedError(ErrorType.ConfigUnsupported, message, { path, ...(this.locate?.(path) ?? {}) });
  }

  /** The rule that applies to this element once its type attribute has chosen a case. */
  private resolve(el: XmlElement, rule: ElementRule, path: string, rel: string): { rule: ElementRule; selector?: string } {
    if (rule.byAttr === undefined) return { rule };
    const { attr, absent, cases } = rule.byAttr;
    const value = getAttr(el, attr) ?? absent;
    const built = Object.keys(cases).join(', ');
    if (value === undefined) this.refuse(`${rel} without a ${attr} is not supported (vmferry builds ${attr} ${built})`, `${path}/@${attr}`);
    const chosen = own(cases, value);
    if (chosen === undefined) this.refuse(`${rel} with ${attr}='${value}' is not supported: vmferry builds ${attr} ${built} only`, `${path}/@${attr}`);
    return { rule: chosen, selector: attr };
  }

  element(el: XmlElement, given: ElementRule, path: string): void {
    const rel = path.replace(/^\/domain\/?/, '') || 'domain';
    const { rule, selector } = this.resolve(el, given, path, rel);
    const reason = rule.refuse?.(el);
    if (reason !== undefined) this.refuse(`${rel}: ${reason}`, path);
    if (rule.opaque) return;
    for (const a of el.attrs) {
      if (a.name === selector || isNamespaceDeclaration(a.name)) continue;
      const ar: AttrRule | undefined = own(rule.attrs, a.name);
      const ap = `${path}/@${a.name}`;
      if (ar === undefined) this.refuse(`${rel}/@${a.name} is not supported: vmferry does not apply it`, ap);
      const value = getAttr(el, a.name) ?? a.raw;
      if (typeof ar === 'object' && !ar.values.includes(value)) {
        this.refuse(`${rel}/@${a.name}='${value}' is not supported: vmferry builds ${ar.values.join(', ')} only (${ar.why})`, ap);
      }
    }
    const children = childElements(el);
    const counts = new Map<string, number>();
    for (const c of children) counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
    const seen = new Map<string, number>();
    for (const c of children) {
      const i = seen.get(c.name) ?? 0;
      seen.set(c.name, i + 1);
      const cp = `${path}/${pathStep(c.name, i, counts.get(c.name) ?? 1)}`;
      const cr = own(rule.children, c.name);
      if (cr === undefined) {
        this.refuse(
          `<${c.name}> (${cp.replace(/^\/domain\//, '')}) is not supported: vmferry does not build it into QEMU, and will not run the domain without it`,
          cp,
        );
      }
      this.element(c, cr, cp);
    }
  }
}

/** Refuses what a parsed `<domain>` tree holds beyond what vmferry builds. */
export function checkBuiltTree(root: XmlElement, locate?: XmlLocator): void {
  new Walk(locate).element(root, DOMAIN_RULE, '/domain');
}

/** Refuses a definition holding anything vmferry would not build (ConfigUnsupported). */
export function checkBuilt(def: DomainDef): void {
  const xml = formatDomainXml(def);
  checkXmlInput(xml, Math.max(4 * xml.length, 1));
  const doc = parseXmlDocument(xml);
  checkBuiltTree(doc.root, doc.locate);
}
