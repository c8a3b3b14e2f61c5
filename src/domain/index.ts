// Domain XML: parse libvirt domain XML into a typed, editable, JSON-friendly
// model, format it back (unmodelled content untouched), produce the migratable
// form. Every type of the model is public; its value lists stay internal.
export type * from './domain-model.js';
export type * from './devices-more-model.js';
export { assignAddresses } from './assign-addresses.js';
export { cloneDomainDef } from './domain-model.js';
export { unmodelledCpuContent } from './cpu-xml.js';
export { parseDomainXml, type ParseDomainOptions } from './domain-parse.js';
export { formatDomainXml } from './domain-format.js';
export { migratableDomainDef, migratableDomainXml } from './migratable.js';
export { pinMachineAlias } from './machine-alias.js';
export { withoutSecrets } from './security-info.js';
export { validateDomainDef } from './domain-validate.js';
export { checkBuilt } from './built-check.js';
export { memoryToKiB, memoryUnitBytes, MAX_MEMORY_KIB } from './memory-units.js';
export { normalizeUuid } from './uuid.js';
export { DEFAULT_MAX_XML_BYTES } from '../xml/xml-safety.js';
export type { XmlAttr, XmlElement, XmlNode } from '../xml/xml-tree.js';
