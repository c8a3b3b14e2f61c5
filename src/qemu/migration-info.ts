// What vmferry reads of QEMU's query-migrate, in one type for every job that
// streams QEMU's state (migration, save, restore). QEMU's reply is parsed into
// it field by field, so a field of an unexpected type reads as absent instead
// of flowing into arithmetic or messages.

export interface MigrationRam {
  transferred?: number;
  remaining?: number;
  total?: number;
  mbps?: number;
  'dirty-pages-rate'?: number;
  'dirty-sync-count'?: number;
  'postcopy-requests'?: number;
}

export interface MigrationInfo {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  'setup-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  'cpu-throttle-percentage'?: number;
  ram?: MigrationRam;
}

const INFO_STRINGS = ['status', 'error-desc'] as const satisfies readonly (keyof MigrationInfo)[];
const INFO_NUMBERS = [
  'total-time',
  'setup-time',
  'downtime',
  'expected-downtime',
  'cpu-throttle-percentage',
] as const satisfies readonly (keyof MigrationInfo)[];
const RAM_NUMBERS = [
  'transferred',
  'remaining',
  'total',
  'mbps',
  'dirty-pages-rate',
  'dirty-sync-count',
  'postcopy-requests',
] as const satisfies readonly (keyof MigrationRam)[];

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function copyTyped(from: Record<string, unknown>, to: Record<string, unknown>, keys: readonly string[], type: 'number' | 'string'): void {
  for (const k of keys) if (typeof from[k] === type) to[k] = from[k];
}

/** query-migrate's reply as a MigrationInfo; a reply that is not an object reads as no migration info at all. */
export function parseMigrationInfo(raw: unknown): MigrationInfo {
  if (!isRecord(raw)) return {};
  const info: Record<string, unknown> = {};
  copyTyped(raw, info, INFO_STRINGS, 'string');
  copyTyped(raw, info, INFO_NUMBERS, 'number');
  if (isRecord(raw.ram)) {
    const ram: Record<string, unknown> = {};
    copyTyped(raw.ram, ram, RAM_NUMBERS, 'number');
    info.ram = ram;
  }
  return info as MigrationInfo;
}

const ACTIVE = new Set([
  'setup',
  'active',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover-setup',
  'postcopy-recover',
  'pre-switchover',
  'device',
  'wait-unplug',
  'cancelling',
]);

export function isMigrationActive(status: string | undefined): boolean {
  return status !== undefined && ACTIVE.has(status);
}
