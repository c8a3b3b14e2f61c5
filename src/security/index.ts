export {
  createSecurityDriver,
  type SecurityConfig,
  type SecurityContext,
  type SecurityDriver,
  type SecurityDriverName,
  type ProcessIdentity,
  type StackableDriverName,
} from './driver.js';
export { NoneDriver } from './none.js';
export { DacDriver, type DacOriginal } from './dac.js';
export { SelinuxDriver, SELINUX_ATTR, defaultImageLabel, mcsCategories, selinuxKernelEnabled, type SelinuxOptions } from './selinux.js';
export { StackDriver } from './stack.js';
export { AttrToolsXattr, XattrError, type XattrBackend } from './xattr.js';
export { restoreFailuresOf, type RestoreFailure } from './errors.js';
