// For hosts where QEMU runs with the worker's own rights: nothing to label.
import type { SecurityDriver } from './driver.js';

export class NoneDriver implements SecurityDriver {
  readonly name = 'none';
  async labelPath(): Promise<void> {}
  async restorePath(): Promise<void> {}
  async labelFd(): Promise<void> {}
  async restoreFd(): Promise<void> {}
  async labelHandedFd(): Promise<void> {}
}
