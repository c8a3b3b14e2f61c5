// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Valid libvirt XML that vmferry once refused as invalid: memory given by NUMA
// cells (built as -numa nodes, or refused with its path where not, never dropped), and network
// names holding any character but '/'.
import { describe, expect, it } from 'vitest';
import { isVmError } from '../src/common/errors.js';
import { checkBuilt, formatDomainXml, parseDomainXml } from '../src/domain/index.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { guestXml } from './helpers/guest-xml.js';

const outcome = (f: () => unknown): string => {
  try {
    f();
    return 'succeeded';
  } catch (err) {
    return isVmError(err) ? `${err.type}: ${err.message}` : String(err);
  }
};

describe('libvirt XML vmferry accepts', () => {
  const numa = (memory: string) =>
    guestXml({ name: 'numa' })
      .replace(/ *<memory unit='MiB'>64<\/memory>\n/, memory)
      .replace(/ *<currentMemory[^\n]*\n/, '')
      .replace('</features>', "</features>\n  <cpu><numa><cell id='0' cpus='0' memory='32' unit='MiB'/><cell id='1' cpus='0' memory='32768'/></numa></cpu>");

  it('memory from NUMA cells, without <memory>: their sum', () => {
    const def = parseDomainXml(numa(''));
    expect(def.memoryKiB).toBe(65536);
    expect(def.currentMemoryKiB).toBe(65536);
    expect(formatDomainXml(def)).toContain("<memory unit='KiB'>65536</memory>");
  });

  it('NUMA cells override a <memory> that disagrees, as in libvirt', () => {
    expect(parseDomainXml(numa("  <memory unit='MiB'>1</memory>\n")).memoryKiB).toBe(65536);
  });

  it('without <memory> and without cells: XmlError', () => {
    expect(outcome(() => parseDomainXml(guestXml({ name: 'x' }).replace(/ *<memory unit='MiB'>64<\/memory>\n/, '')))).toMatch(/^XmlError: missing <memory>/);
  });

  it('guest NUMA is built (-numa node per cell), and refused with file-backed memory, never dropped', () => {
    const anonymous = parseDomainXml(numa('').replace(/ *<memoryBacking>[\s\S]*?<\/memoryBacking>\n/, ''));
    expect(outcome(() => checkBuilt(anonymous))).toBe('succeeded');
    const args = buildQemuArgs(anonymous, { qmpSocket: '/run/x.qmp' });
    expect(args.filter((a) => a.startsWith('node,nodeid='))).toHaveLength(2);
    expect(outcome(() => buildQemuArgs(parseDomainXml(numa('')), { qmpSocket: '/run/x.qmp', memoryBackingFile: '/dev/shm/x.ram' }))).toMatch(
      /^ConfigUnsupported: .*NUMA cells together with file-backed memory/,
    );
  });

  it.each(['default', 'my net+1', 'réseau:ü', 'a b@c'])("network name '%s' is accepted", (network) => {
    const xml = guestXml({
      name: 'net',
      extraDevices: `\n    <graphics type='vnc' port='-1' autoport='yes'><listen type='network' network='${network}'/></graphics>`,
    });
    expect(parseDomainXml(xml).devices.graphics[0]!.listens[0]!.network).toBe(network);
  });

  it("a network name with '/' is an XmlError", () => {
    const xml = guestXml({
      name: 'net',
      extraDevices: "\n    <graphics type='vnc' port='-1' autoport='yes'><listen type='network' network='a/b'/></graphics>",
    });
    expect(outcome(() => parseDomainXml(xml))).toMatch(/^XmlError: invalid network name 'a\/b'/);
  });
});
