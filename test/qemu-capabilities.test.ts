// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The migration half of a host's QEMU probe, parsed from QMP replies shaped as QEMU sends them
// (query-migrate-capabilities, query-qmp-schema with its masked type names, qom-get of
// /machine), what a migration needs of each end from its flags, the refusal that names the
// host and what it lacks, the probe cache on disk, and the test-only knob that hides parts of
// a probe. No QEMU needed: test/qemu-probe.test.ts probes the installed one.
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrationNeeds, missingForMigration, refuseMissing } from '../src/common/migration-needs.js';
import { PROBED_COMMANDS, resolveMachine, type QemuMigrationCapabilities } from '../src/common/qemu-capabilities.js';
import { checkMigrationEnd, machineNames, migrationInfo, parseQemuHide, withHidden, withMachine } from '../src/host/host-capabilities.js';
import { commandArguments, machineTypeOfClass, parseSchema } from '../src/qemu/capabilities-probe.js';
import { parseMigrationCapabilities } from '../src/qemu/migration-params.js';
import { PROBE_CACHE_FILE, PROBE_FORMAT, readCachedProbe, writeCachedProbe } from '../src/qemu/probe-cache.js';
import { cachedProbe, type QemuProbe } from '../src/qemu/probe.js';
import { parseDomainXml, pinMachineAlias } from '../src/domain/index.js';
import { checkAbiStability } from '../src/migration/abi-check.js';
import { guestXml } from './helpers/guest-xml.js';
import { ApplicationFailure } from '@temporalio/common';

const dir = mkdtempSync(join(tmpdir(), 'vmf-caps-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A schema as query-qmp-schema returns it: commands by name, their argument objects under masked numbers. */
const SCHEMA = [
  { name: 'migrate-set-parameters', 'meta-type': 'command', 'arg-type': '143', 'ret-type': '0' },
  { name: 'nbd-server-start', 'meta-type': 'command', 'arg-type': '99', 'ret-type': '0' },
  { name: 'migrate-recover', 'meta-type': 'command', 'arg-type': '98', 'ret-type': '0' },
  { name: 'MIGRATION', 'meta-type': 'event', 'arg-type': '97' },
  { name: '143', 'meta-type': 'object', members: [{ name: 'max-bandwidth', type: 'int' }, { name: 'downtime-limit' }, { name: 'multifd-channels' }] },
  { name: '99', 'meta-type': 'object', members: [{ name: 'addr' }] },
  { name: '98', 'meta-type': 'object', members: [{ name: 'uri' }] },
  // An object that names a command-like member must not count as a command.
  { name: 'block-export-add', 'meta-type': 'enum', values: [] },
];

const ALL_COMMANDS = Object.fromEntries(PROBED_COMMANDS.map((c) => [c, true])) as QemuMigrationCapabilities['commands'];

async function rejection(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

function probe(over: Partial<QemuProbe> = {}): QemuProbe {
  return {
    binary: '/usr/bin/qemu-system-x86_64',
    mtimeMs: 1,
    version: '7.2.22',
    package: 'test',
    machines: [{ name: 'pc-i440fx-7.2', alias: 'pc', isDefault: true }, { name: 'pc-q35-7.2', alias: 'q35' }, { name: 'pc-i440fx-7.1' }],
    migration: {
      migrationCapabilities: ['xbzrle', 'auto-converge', 'events', 'postcopy-ram', 'pause-before-switchover', 'multifd'],
      migrationParameters: ['max-bandwidth', 'downtime-limit'],
      commands: ALL_COMMANDS,
    },
    accels: {},
    probedAtMs: 0,
    durationMs: 0,
    ...over,
  };
}

describe('parsing the probe', () => {
  it('capabilities from query-migrate-capabilities; a malformed reply is an error, not an empty list', () => {
    expect(
      parseMigrationCapabilities([
        { state: false, capability: 'xbzrle' },
        { state: true, capability: 'events' },
      ]),
    ).toEqual(['xbzrle', 'events']);
    expect(() => parseMigrationCapabilities({})).toThrow(/did not return a list/);
    expect(() => parseMigrationCapabilities([{ state: false }])).toThrow(/without a name/);
  });

  it('parameters are the members of the object migrate-set-parameters takes; commands only count with meta-type command', () => {
    const parsed = parseSchema(SCHEMA);
    expect(parsed.migrationParameters).toEqual(['max-bandwidth', 'downtime-limit', 'multifd-channels']);
    expect(parsed.commands['nbd-server-start']).toBe(true);
    expect(parsed.commands['migrate-recover']).toBe(true);
    expect(parsed.commands['block-export-add']).toBe(false);
    expect(parsed.commands['block-dirty-bitmap-add']).toBe(false);
    expect(Object.keys(parsed.commands).sort()).toEqual([...PROBED_COMMANDS].sort());
    expect(commandArguments(SCHEMA, 'nbd-server-start')).toEqual(['addr']);
    expect(commandArguments(SCHEMA, 'no-such-command')).toBeUndefined();
  });

  it('a schema without migrate-set-parameters, or not a list, is refused', () => {
    expect(() => parseSchema(SCHEMA.filter((e) => e.name !== 'migrate-set-parameters'))).toThrow(/no migrate-set-parameters/);
    expect(() => parseSchema('x')).toThrow(/did not return a list/);
    expect(() =>
      parseSchema([
        { name: 'migrate-set-parameters', 'meta-type': 'command', 'arg-type': '7' },
        { name: '7', 'meta-type': 'enum' },
      ]),
    ).toThrow(/not an object/);
  });

  it("the running machine type from QOM's /machine class name", () => {
    expect(machineTypeOfClass('pc-i440fx-7.2-machine')).toBe('pc-i440fx-7.2');
    expect(machineTypeOfClass('pc-q35-10.0-machine')).toBe('pc-q35-10.0');
    for (const bad of ['pc-i440fx-7.2', '-machine', 42, undefined]) expect(() => machineTypeOfClass(bad)).toThrow(/\/machine has type/);
  });

  it('aliases resolve to the versioned type; an unknown name to nothing', () => {
    const p = probe();
    expect(resolveMachine(p.machines, 'pc')).toBe('pc-i440fx-7.2');
    expect(resolveMachine(p.machines, 'q35')).toBe('pc-q35-7.2');
    expect(resolveMachine(p.machines, 'pc-i440fx-7.1')).toBe('pc-i440fx-7.1');
    expect(resolveMachine(p.machines, 'pc-i440fx-10.0')).toBeUndefined();
    expect(machineNames(p)).toEqual(['pc-i440fx-7.2', 'pc', 'pc-q35-7.2', 'q35', 'pc-i440fx-7.1']);
    expect(migrationInfo(p)).toMatchObject({ machineAliases: { pc: 'pc-i440fx-7.2', q35: 'pc-q35-7.2' }, commands: [...PROBED_COMMANDS] });
  });

  it('a domain leaves as the versioned type it runs; offline (unknown) leaves it as defined', () => {
    const def = parseDomainXml(guestXml({ name: 'g', memoryMiB: 64 }));
    expect(def.os.machine).toBe('pc');
    expect(withMachine(def, 'pc-i440fx-7.2').os.machine).toBe('pc-i440fx-7.2');
    expect(def.os.machine).toBe('pc');
    expect(withMachine(def, undefined)).toBe(def);
  });

  it("a replacement XML naming the alias takes the guest's versioned type of that family; the ABI check then compares like with like", () => {
    const given = parseDomainXml(guestXml({ name: 'g', memoryMiB: 64 }));
    const running = withMachine(given, 'pc-i440fx-7.2');
    expect(() => checkAbiStability(given, running)).toThrow(/machine type 'pc' does not match source 'pc-i440fx-7.2'/);
    const pinned = pinMachineAlias(given, 'pc-i440fx-7.2');
    expect(pinned.os.machine).toBe('pc-i440fx-7.2');
    expect(() => checkAbiStability(pinned, running)).not.toThrow();
    const machineOf = (own: string | undefined, guest: string | undefined) =>
      pinMachineAlias({ ...given, os: { ...given.os, machine: own } }, guest).os.machine;
    expect(machineOf(undefined, 'pc-i440fx-10.0')).toBe('pc-i440fx-10.0');
    expect(machineOf('q35', 'pc-q35-7.2')).toBe('pc-q35-7.2');
    // Another family, another version, or nothing known of the guest: left for the ABI check.
    expect(machineOf('q35', 'pc-i440fx-7.2')).toBe('q35');
    expect(machineOf('pc', 'pc-q35-7.2')).toBe('pc');
    expect(machineOf('pc-i440fx-7.1', 'pc-i440fx-7.2')).toBe('pc-i440fx-7.1');
    expect(machineOf('pc', undefined)).toBe('pc');
  });
});

describe('what a migration needs of each end', () => {
  it('capabilities by flag, stream-shaping ones at both ends, sender-only ones at the source', () => {
    const names = (flags: Parameters<typeof migrationNeeds>[0], end: 'source' | 'destination') => migrationNeeds(flags, end).capabilities.map((c) => c.name);
    expect(names(['live'], 'source')).toEqual(['events']);
    expect(names(['live', 'postcopy'], 'destination')).toEqual(['events', 'postcopy-ram']);
    expect(names(['live', 'compressed', 'auto-converge'], 'source')).toEqual(['events', 'xbzrle', 'auto-converge']);
    expect(names(['live', 'compressed', 'auto-converge'], 'destination')).toEqual(['events', 'xbzrle']);
    expect(names(['live', 'copy-storage-all'], 'source')).toEqual(['events', 'pause-before-switchover']);
    expect(migrationNeeds(['live', 'copy-storage-inc'], 'destination').commands.map((c) => c.name)).toEqual([
      'migrate-incoming',
      'nbd-server-start',
      'block-export-add',
    ]);
    // An offline migration starts no QEMU: it needs nothing of either.
    expect(migrationNeeds(['offline', 'postcopy'], 'destination')).toEqual({ capabilities: [], commands: [] });
  });

  it('what is missing, in words; nothing when all is there', () => {
    const have = { ...probe().migration, machines: machineNames(probe()) };
    expect(missingForMigration(migrationNeeds(['live', 'postcopy'], 'destination'), have, 'pc-i440fx-7.2')).toEqual([]);
    const lacking = { ...have, migrationCapabilities: ['events'], commands: { ...ALL_COMMANDS, 'migrate-start-postcopy': false } };
    expect(missingForMigration(migrationNeeds(['live', 'postcopy'], 'source'), lacking, 'pc-i440fx-10.0')).toEqual([
      "machine type 'pc-i440fx-10.0'",
      "migration capability 'postcopy-ram' (for 'postcopy')",
      "QMP command 'migrate-start-postcopy' (for 'postcopy')",
    ]);
  });

  it('the refusal is ConfigUnsupported, names the host, its QEMU and every missing piece', async () => {
    expect(() => refuseMissing('h', 'source', probe(), [])).not.toThrow();
    const lacking = withHidden(probe(), parseQemuHide('machine:pc-i440fx-7.2,capability:xbzrle'));
    const f = await rejection(Promise.resolve().then(() => checkMigrationEnd('cap-b', 'destination', lacking, ['live', 'compressed'], 'pc-i440fx-7.2')));
    expect(f.type).toBe('ConfigUnsupported');
    expect(f.message).toBe(
      "destination host 'cap-b' cannot take part in this migration: its QEMU 7.2.22 (/usr/bin/qemu-system-x86_64) lacks machine type 'pc-i440fx-7.2', " +
        "migration capability 'xbzrle' (for 'compressed' (XBZRLE))",
    );
    // The alias went with the hidden type: a guest defined as `pc` finds nothing either.
    expect(() => checkMigrationEnd('cap-b', 'destination', lacking, ['live'], 'pc')).toThrow(/lacks machine type 'pc'/);
    expect(() => checkMigrationEnd('cap-b', 'destination', lacking, ['live'], 'pc-q35-7.2')).not.toThrow();
  });
});

describe('the test-only hide knob', () => {
  it('parses KIND:NAME lists and refuses anything else', () => {
    expect(parseQemuHide(undefined)).toEqual({ machines: [], capabilities: [], parameters: [], commands: [] });
    expect(parseQemuHide(' machine:pc-q35-7.2 , capability:postcopy-ram,parameter:multifd-channels,command:migrate-recover')).toEqual({
      machines: ['pc-q35-7.2'],
      capabilities: ['postcopy-ram'],
      parameters: ['multifd-channels'],
      commands: ['migrate-recover'],
    });
    for (const bad of ['pc', 'machine:', ':x', 'cpu:max']) expect(() => parseQemuHide(bad)).toThrow(/bad VMFERRY_HOST_QEMU_HIDE entry/);
  });

  it('hides from a copy; nothing hidden is the probe itself', () => {
    const p = probe();
    expect(withHidden(p, parseQemuHide(''))).toBe(p);
    const h = withHidden(p, parseQemuHide('capability:events,parameter:downtime-limit,command:nbd-server-start'));
    expect(h.migration.migrationCapabilities).not.toContain('events');
    expect(h.migration.migrationParameters).toEqual(['max-bandwidth']);
    expect(h.migration.commands['nbd-server-start']).toBe(false);
    expect(p.migration.migrationCapabilities).toContain('events');
    expect(p.migration.commands['nbd-server-start']).toBe(true);
  });
});

describe('the probe cache in the state directory', () => {
  it('keeps one entry per binary, valid for its mtime and this format only', () => {
    const cacheDir = mkdtempSync(join(dir, 'c-'));
    writeCachedProbe(cacheDir, probe({ binary: '/x/qemu-a', mtimeMs: 10 }));
    writeCachedProbe(cacheDir, probe({ binary: '/x/qemu-b', mtimeMs: 20 }));
    expect(readCachedProbe(cacheDir, '/x/qemu-a', 10)?.binary).toBe('/x/qemu-a');
    expect(readCachedProbe(cacheDir, '/x/qemu-b', 20)?.mtimeMs).toBe(20);
    expect(readCachedProbe(cacheDir, '/x/qemu-a', 11)).toBeUndefined();
    writeFileSync(
      join(cacheDir, PROBE_CACHE_FILE),
      JSON.stringify({ format: PROBE_FORMAT - 1, probes: { '/x/qemu-a': probe({ binary: '/x/qemu-a', mtimeMs: 10 }) } }),
    );
    expect(readCachedProbe(cacheDir, '/x/qemu-a', 10)).toBeUndefined();
    writeFileSync(join(cacheDir, PROBE_CACHE_FILE), 'not json');
    expect(readCachedProbe(cacheDir, '/x/qemu-a', 10)).toBeUndefined();
  });

  it('a worker start reads the stored probe instead of running the binary; a changed binary is probed again', async () => {
    // Not a QEMU: probing it fails, so an answer can only come from the cache.
    const binary = join(dir, 'fake-qemu');
    writeFileSync(binary, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    utimesSync(binary, 1_700_000_000, 1_700_000_000);
    const cacheDir = mkdtempSync(join(dir, 'c-'));
    writeCachedProbe(cacheDir, probe({ binary, mtimeMs: 1_700_000_000_000, version: '99.0.0' }));
    expect((await cachedProbe(binary, dir, { cacheDir })).version).toBe('99.0.0');
    utimesSync(binary, 1_700_000_001, 1_700_000_001);
    const f = await rejection(cachedProbe(binary, dir, { cacheDir }));
    expect(f.message).toMatch(/QEMU exited during start-up/);
  });
});
