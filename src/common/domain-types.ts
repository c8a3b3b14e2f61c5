// Shapes that cross the activity boundary: produced by host activities, consumed
// by workflows and the CLI. Plain JSON only.

/** libvirt's virDomainState names, lower-cased. */
export type DomainState = 'running' | 'paused' | 'shutoff' | 'crashed';

export interface DomainSummary {
  name: string;
  uuid: string;
  state: DomainState;
  persistent: boolean;
}

export interface DomainInfo extends DomainSummary {
  /** Why it is in that state, in libvirt's words (booted, user, migration, ...). */
  reason: string;
  pid?: number;
  memoryKiB: number;
  currentMemoryKiB: number;
  vcpus: number;
  host: string;
  /** Live-only: where QMP and the guest RAM file are, for tests and diagnostics. */
  qmpSocket?: string;
  memoryBackingFile?: string;
}

/** One disk's I/O counters, as virsh domblkstat shows them. */
export interface BlockStats {
  /** Target device name (vda, hdc, ...). */
  device: string;
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
  flushOps: number;
}

export interface HostInfo {
  name: string;
  hostUuid: string;
  hostname: string;
  protocolVersions: number[];
  qemuVersion?: string;
  /** What probing the host's QEMU found (absent until the probe has run). */
  qemu?: HostQemuInfo;
}

export interface HostQemuInfo {
  binary: string;
  version: string;
  package: string;
  /** The versioned machine types (pc-i440fx-7.2, ...); a running guest's is one of these. */
  machines: string[];
  defaultMachine?: string;
  /** Short names and the versioned type each stands for here (pc -> pc-i440fx-7.2, q35 -> pc-q35-7.2). */
  machineAliases: Record<string, string>;
  /** Every migration capability the QEMU knows (query-migrate-capabilities). */
  migrationCapabilities: string[];
  /** Every parameter migrate-set-parameters takes (the members of MigrateSetParameters in the QMP schema). */
  migrationParameters: string[];
  /** The commands of common/qemu-capabilities.ts PROBED_COMMANDS this QEMU has. */
  commands: string[];
  accels: {
    accel: 'kvm' | 'tcg';
    /** The model host-model stands for there: host (KVM), max (TCG). */
    hostModel: string;
    usableCpuModels: string[];
    unusableCpuModels: string[];
    /** Features the host model has on. */
    hostCpuFeatures: string[];
  }[];
  probedAtMs: number;
  durationMs: number;
}

/** Longest shutdown wait a request may ask for. */
export const MAX_SHUTDOWN_TIMEOUT_S = 3600;

export type DomainOperation =
  | { op: 'define'; xml: string }
  | { op: 'undefine'; name: string }
  | { op: 'start'; name: string; paused?: boolean }
  | { op: 'destroy'; name: string }
  /** ACPI power button; with timeoutSeconds, waits that long for the guest to stop (never forces it). */
  | { op: 'shutdown'; name: string; timeoutSeconds?: number }
  /** ACPI power button, then a reset instead of a stop when the guest powers off (libvirt's fake reboot). */
  | { op: 'reboot'; name: string }
  /** system_reset: the hard reset button. */
  | { op: 'reset'; name: string }
  | { op: 'suspend'; name: string }
  | { op: 'resume'; name: string }
  | { op: 'info'; name: string }
  | { op: 'blockstats'; name: string }
  /** virsh change-media DOMAIN PATH --source FILE | --eject: PATH is the cdrom's target or current source. */
  | { op: 'change-media'; name: string; path: string; source?: string; eject?: boolean }
  /** virsh domif-setlink: `interface` is the NIC's host device (target dev) or its MAC. */
  | { op: 'domif-setlink'; name: string; interface: string; state: 'up' | 'down' }
  | { op: 'list' }
  /** securityInfo: keep graphics passwords in the XML (libvirt's --security-info); stripped otherwise. */
  | { op: 'dumpxml'; name: string; inactive?: boolean; migratable?: boolean; securityInfo?: boolean };

export interface DomainOperationInput {
  host: string;
  operation: DomainOperation;
}

export type DomainOperationResult =
  | { op: 'define'; domain: DomainSummary }
  | {
      op: 'undefine' | 'start' | 'destroy' | 'shutdown' | 'reboot' | 'reset' | 'suspend' | 'resume' | 'info' | 'change-media' | 'domif-setlink';
      domain: DomainInfo;
    }
  | { op: 'list'; domains: DomainSummary[] }
  | { op: 'blockstats'; stats: BlockStats[] }
  | { op: 'dumpxml'; xml: string };
