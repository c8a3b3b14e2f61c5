// libvirt interoperability of save images, against Debian's libvirt 9.0 running
// here (a private session-mode libvirtd, see helpers/libvirt.ts): an image
// `virsh save` wrote restores under vmferry, and one vmferry wrote restores under
// `virsh restore`, raw and gzip, with the guest's random RAM byte for byte equal
// and the guest running. One guest keeps the USB controller libvirt adds by
// default (piix3-uhci at 00:01.2). libvirt leaves that default out of the
// image's XML, so vmferry reads a pc domain without a USB controller element as
// libvirt does (default piix3-uhci, built at the same address) and the stream's
// 'uhci' section loads; that guest stays paused from the fill to the hash. The
// other guests have model='none' (no USB).
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { readSaveHeader } from '../src/saveimage/header.js';
import { isProcessAlive } from '../src/support/proc.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { LibvirtDaemon, libvirtMissing } from './helpers/libvirt.js';
import { magicOf, runJob } from './helpers/save.js';

const cluster = new TestCluster();
const HOST = 'sv-lv-host';
const FILL = 32 * 1024 * 1024;
let lvRoot: string;
let daemon: LibvirtDaemon;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

describe('save images shared with libvirt', () => {
  beforeAll(async () => {
    // Not skipped when missing: setup --for-tests installs it, and a skip would hide the gap.
    const missing = libvirtMissing();
    if (missing) throw new Error(`libvirt interoperability cannot be tested: ${missing}`);
    await cluster.connect();
    await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
    lvRoot = mkdtempSync('/tmp/sv-lv-');
    daemon = new LibvirtDaemon(lvRoot);
  });

  afterAll(async () => {
    await daemon?.stop();
    await cluster.removeAllDomains([HOST]);
    await cluster.stop();
    if (lvRoot) rmSync(lvRoot, { recursive: true, force: true });
  });

  for (const format of ['raw', 'gzip'] as const) {
    describe(format, () => {
      beforeAll(async () => {
        await daemon.start(format);
      });

      afterAll(async () => {
        // Whatever a failed case left running under libvirt goes before the daemon does.
        for (const name of daemon.virsh('list', '--name').split('\n').filter(Boolean)) daemon.virsh('destroy', name);
        await daemon.stop();
      });

      it(`virsh save (${format}) -> vmferry restore`, async () => {
        const name = `sv-lv-in-${format}`;
        const images = daemon.ownedDir('images');
        const xmlFile = join(images, `${name}.xml`);
        writeFileSync(xmlFile, guestXml({ name, memoryMiB: 64 }));
        chownSync(xmlFile, daemon.user.uid, daemon.user.gid);
        daemon.virsh('create', xmlFile);
        await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
        const uuid = daemon.virsh('domuuid', name).trim();
        const libvirtQemu = daemon.qemuPid(name);
        const ram = daemon.memoryFile(name);
        fillRandom(ram, FILL);
        const before = hashRange(ram, FILL);

        const path = join(images, `${name}.img`);
        daemon.virsh('save', name, path);
        expect(magicOf(path)).toBe('LibvirtQemudSave');
        expect((await readSaveHeader(path)).format).toBe(format);
        await waitFor('the saved QEMU gone', () => !isProcessAlive(libvirtQemu), { timeoutMs: 10_000, intervalMs: 50 });

        const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: HOST, path });
        expect(restored.domain).toMatchObject({ name, uuid, state: 'running' });
        expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
        expect(isProcessAlive(restored.domain.pid!)).toBe(true);
        // The guest's CPUs really run after the load: QEMU reports it, not just our status file.
        expect(domainOf(await cluster.op(HOST, { op: 'info', name }))).toMatchObject({ state: 'running' });
        expect(magicOf(path)).toBe('LibvirtQemudSave');
        await cluster.op(HOST, { op: 'destroy', name });
        rmSync(path);
        rmSync(xmlFile);
      });

      if (format === 'raw') {
        it("virsh save -> vmferry restore of a guest with libvirt's default USB controller (piix3-uhci)", async () => {
          const name = 'sv-lv-usb';
          const images = daemon.ownedDir('images');
          const xmlFile = join(images, `${name}.xml`);
          // No <controller type='usb'>: libvirt adds its default one, as for any guest defined through it.
          writeFileSync(xmlFile, guestXml({ name, memoryMiB: 64, usb: true }));
          chownSync(xmlFile, daemon.user.uid, daemon.user.gid);
          daemon.virsh('create', xmlFile);
          await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
          expect(daemon.virsh('dumpxml', name)).toMatch(/<controller type='usb' index='0' model='piix3-uhci'>/);
          const uuid = daemon.virsh('domuuid', name).trim();
          const libvirtQemu = daemon.qemuPid(name);
          const ram = daemon.memoryFile(name);
          // Paused from the fill to the hash after restore: SeaBIOS runs the UHCI controller, whose DMA
          // keeps writing guest memory while the CPUs run.
          daemon.virsh('suspend', name);
          await waitFor(`${name} paused under libvirt`, () => daemon.domState(name) === 'paused', { timeoutMs: 30_000 });
          fillRandom(ram, FILL);
          const before = hashRange(ram, FILL);

          const path = join(images, `${name}.img`);
          daemon.virsh('save', name, path);
          // libvirt leaves its default controller out of the image's XML; the stream still carries its state.
          expect((await readSaveHeader(path)).domainXml).not.toMatch(/type='usb'/);
          await waitFor('the saved QEMU gone', () => !isProcessAlive(libvirtQemu), { timeoutMs: 10_000, intervalMs: 50 });

          const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: HOST, path });
          expect(restored.domain).toMatchObject({ name, uuid, state: 'paused' });
          expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
          expect(isProcessAlive(restored.domain.pid!)).toBe(true);
          // The loaded controller runs once the CPUs do.
          expect(domainOf(await cluster.op(HOST, { op: 'resume', name }))).toMatchObject({ state: 'running' });
          await cluster.op(HOST, { op: 'destroy', name });
          rmSync(path);
          rmSync(xmlFile);
        });
      }

      it(`vmferry save (${format}) -> virsh restore`, async () => {
        const name = `sv-lv-out-${format}`;
        await cluster.op(HOST, { op: 'define', xml: guestXml({ name, memoryMiB: 64 }) });
        const dom = domainOf(await cluster.op(HOST, { op: 'start', name }));
        fillRandom(dom.memoryBackingFile!, FILL);
        const before = hashRange(dom.memoryBackingFile!, FILL);

        const images = daemon.ownedDir('images');
        const path = join(images, `${name}.img`);
        const saved = await runJob<SaveResult>(cluster.client, 'save', dom.uuid, { host: HOST, name, path, format });
        expect(saved.format).toBe(format);
        await cluster.op(HOST, { op: 'undefine', name });
        // vmferry writes images 0600 as its own user; libvirt's daemon runs as another.
        chownSync(path, daemon.user.uid, daemon.user.gid);

        daemon.virsh('restore', path);
        await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
        expect(daemon.virsh('domuuid', name).trim()).toBe(dom.uuid);
        expect(hashRange(daemon.memoryFile(name), FILL)).toBe(before);
        expect(isProcessAlive(daemon.qemuPid(name))).toBe(true);
        daemon.virsh('destroy', name);
        rmSync(path);
      });
    });
  }
});
