export { domainOperation } from './domain-operation.js';
export { coreDump } from './core-dump.js';
export { migrate } from './migrate.js';
export { save } from './save.js';
export { restore } from './restore.js';
export { managedSave, managedStart, managedSaveRemove } from './managed-save.js';
export { saveImageXml } from './save-image-xml.js';
export { hostInventory } from './host-inventory.js';
