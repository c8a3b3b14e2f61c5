// The migration cookie: libvirt's <qemu-migration> document that each phase of
// a v3 migration hands to the next. Schema in cookie-model, reading (hostile
// input, on the shared XML layer in src/xml) in cookie-parse, writing in
// cookie-format.
export * from './cookie-model.js';
export { parseMigrationCookie } from './cookie-parse.js';
export { formatMigrationCookie } from './cookie-format.js';
