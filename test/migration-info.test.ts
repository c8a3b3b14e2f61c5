// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// query-migrate's reply parsed into the one MigrationInfo type every job reads. No QEMU needed.
import { describe, expect, it } from 'vitest';
import { isMigrationActive, parseMigrationInfo } from '../src/qemu/migration-info.js';

describe('parseMigrationInfo', () => {
  it('keeps the fields jobs report, as QEMU sends them', () => {
    const reply = {
      status: 'active',
      'total-time': 1234,
      'setup-time': 5,
      'expected-downtime': 300,
      'cpu-throttle-percentage': 20,
      ram: {
        transferred: 1000,
        remaining: 3000,
        total: 4096,
        mbps: 812.5,
        'dirty-pages-rate': 12,
        'dirty-sync-count': 3,
        'postcopy-requests': 0,
        duplicate: 7,
      },
      'socket-address': [{ type: 'inet' }],
    };
    expect(parseMigrationInfo(reply)).toEqual({
      status: 'active',
      'total-time': 1234,
      'setup-time': 5,
      'expected-downtime': 300,
      'cpu-throttle-percentage': 20,
      ram: { transferred: 1000, remaining: 3000, total: 4096, mbps: 812.5, 'dirty-pages-rate': 12, 'dirty-sync-count': 3, 'postcopy-requests': 0 },
    });
  });

  it('reads a finished or failed migration', () => {
    expect(parseMigrationInfo({ status: 'completed', downtime: 42, 'total-time': 900 })).toEqual({ status: 'completed', downtime: 42, 'total-time': 900 });
    expect(parseMigrationInfo({ status: 'failed', 'error-desc': 'Unable to write to socket: Broken pipe' })).toEqual({
      status: 'failed',
      'error-desc': 'Unable to write to socket: Broken pipe',
    });
  });

  it('reads no migration at all as an empty info (QEMU omits status before the first migrate)', () => {
    expect(parseMigrationInfo({})).toEqual({});
    expect(parseMigrationInfo(undefined)).toEqual({});
    expect(parseMigrationInfo(null)).toEqual({});
    expect(parseMigrationInfo('active')).toEqual({});
    expect(parseMigrationInfo([{ status: 'active' }])).toEqual({});
  });

  it('drops a field of the wrong type rather than passing it on', () => {
    expect(parseMigrationInfo({ status: 7, 'error-desc': { x: 1 }, 'total-time': '12', downtime: null, ram: { total: '4096', remaining: 1 } })).toEqual({
      ram: { remaining: 1 },
    });
    expect(parseMigrationInfo({ status: 'setup', ram: [1, 2] })).toEqual({ status: 'setup' });
  });
});

describe('isMigrationActive', () => {
  it('is true while QEMU still streams or waits to finish', () => {
    for (const s of ['setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'pre-switchover', 'device', 'wait-unplug', 'cancelling'])
      expect(isMigrationActive(s), s).toBe(true);
  });
  it('is false once it ended, or when there is none', () => {
    for (const s of ['none', 'completed', 'failed', 'cancelled', undefined]) expect(isMigrationActive(s), String(s)).toBe(false);
  });
});
