// The security driver interface: whatever QEMU will touch (an image, a socket, a
// descriptor it is handed) gets the domain's label before QEMU touches it, and
// its remembered original back afterwards, on success and on failure alike.
import { ErrorType, vmError } from '../common/errors.js';
import { DacDriver } from './dac.js';
import { NoneDriver } from './none.js';
import { SelinuxDriver } from './selinux.js';
import { StackDriver } from './stack.js';

export interface SecurityContext {
  domain: string;
  uuid: string;
}

export interface SecurityDriver {
  readonly name: string; // 'none' | 'dac' | 'selinux' | 'stack'
  labelPath(path: string, ctx: SecurityContext): Promise<void>;
  restorePath(path: string, ctx: SecurityContext): Promise<void>;
  labelFd(fd: number, ctx: SecurityContext): Promise<void>;
  restoreFd(fd: number, ctx: SecurityContext): Promise<void>;
  /**
   * A descriptor QEMU is given for good (a migration socket the worker lets go
   * of): labelled for the domain and left so, nothing remembered, as libvirt
   * labels the descriptors it passes; the object lives and dies with QEMU's use.
   */
  labelHandedFd(fd: number, ctx: SecurityContext): Promise<void>;
  /** The uid and gid the domain's QEMU runs as; undefined: the worker's own (no DAC). */
  processIdentity?(ctx: SecurityContext): ProcessIdentity | undefined;
}

export interface ProcessIdentity {
  uid: number;
  gid: number;
}

export type SecurityDriverName = 'none' | 'dac' | 'selinux' | 'stack';
export type StackableDriverName = Exclude<SecurityDriverName, 'stack'>;

export interface SecurityConfig {
  driver?: SecurityDriverName;
  /** Members of a 'stack', labelled in this order and restored in reverse. */
  stack?: StackableDriverName[];
  /** DAC: the user and group QEMU runs as (name, or number / "+number"). */
  user?: string | number;
  group?: string | number;
  /** DAC: each domain's QEMU gets its own uid from this range (by its UUID), so guests cannot open each other's files. */
  uidRange?: { min: number; max: number };
  /** SELinux: the process label QEMU runs with (for the launcher; files get imageLabel). */
  selinuxLabel?: string;
  /** SELinux: the label files get; by default svirt_image_t with categories derived from the domain UUID. */
  imageLabel?: string;
  /** Where remembered original labels are kept across worker restarts; memory only when absent. */
  rememberDir?: string;
}

const STACKABLE: readonly StackableDriverName[] = ['none', 'dac', 'selinux'];

export function createSecurityDriver(config: SecurityConfig = {}): SecurityDriver {
  const driver: string = config.driver ?? 'none';
  switch (driver) {
    case 'none':
      return new NoneDriver();
    case 'dac':
      return new DacDriver(config);
    case 'selinux':
      return new SelinuxDriver(config);
    case 'stack': {
      const members: string[] = config.stack ?? [];
      if (members.length === 0) throw vmError(ErrorType.ConfigUnsupported, "security driver 'stack' needs at least one member driver");
      const bad = members.find((m) => !(STACKABLE as readonly string[]).includes(m));
      if (bad !== undefined)
        throw vmError(ErrorType.ConfigUnsupported, `security driver ${JSON.stringify(bad)} cannot be stacked (one of ${STACKABLE.join(', ')})`, {
          driver: bad,
        });
      return new StackDriver(members.map((m) => createSecurityDriver({ ...config, driver: m as StackableDriverName })));
    }
    default:
      throw vmError(ErrorType.ConfigUnsupported, `unknown security driver ${JSON.stringify(driver)} (one of none, dac, selinux, stack)`, { driver });
  }
}
