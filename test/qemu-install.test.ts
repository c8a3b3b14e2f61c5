// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Setup's QEMU step: reading apt's sources in both formats, the backports stanza it writes from
// the release's own mirror and key, the version checks (QEMU >= 10, libvirt >= 11.3), the choice
// of the compat QEMU 7.2 from apt-cache madison, and on this machine (set up) the fast path.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasSuite, parseDeb822, parseOneLine, readAptSources, releaseSource, suiteStanza } from '../src/local/apt-sources.js';
import { ensureCompatQemu, parseMadison, pickCompatVersions } from '../src/local/compat-qemu-install.js';
import { compatQemu, compatQemuPresent } from '../src/local/compat-qemu.js';
import { atLeast, belowMinimum, ensureHostPackages, MIN_LIBVIRT, MIN_QEMU, outdatedPackages, upstreamVersion } from '../src/local/qemu-install.js';

const MIRROR = 'http://mirror.example/debian';
const DEB822 = `Types: deb
# a comment
URIs: ${MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Enabled: no
Types: deb
URIs: http://mirror.example/disabled
Suites: bookworm-backports
Components: main
`;

const tmp = mkdtempSync(join(tmpdir(), 'vmf-qemu-install-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('apt sources', () => {
  it('reads deb822 stanzas (a disabled one left out) and one-line entries with their key', () => {
    const s = parseDeb822(DEB822, 'debian.sources');
    expect(s.map((x) => x.suites)).toEqual([['bookworm', 'bookworm-updates'], ['bookworm-security']]);
    expect(s[0]).toMatchObject({ types: ['deb'], uris: [MIRROR], components: ['main'], signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg' });
    const l = parseOneLine(
      `# deb ${MIRROR} bookworm-backports main\ndeb [arch=amd64 signed-by=/etc/k.gpg] ${MIRROR} bookworm main contrib\ndeb-src ${MIRROR} bookworm main\n`,
      'sources.list',
    );
    expect(l).toEqual([
      { file: 'sources.list', types: ['deb'], uris: [MIRROR], suites: ['bookworm'], components: ['main', 'contrib'], signedBy: '/etc/k.gpg' },
      { file: 'sources.list', types: ['deb-src'], uris: [MIRROR], suites: ['bookworm'], components: ['main'] },
    ]);
    // A commented-out or disabled backports line is not a backports source.
    expect(hasSuite([...s, ...l], 'bookworm-backports')).toBe(false);
    expect(releaseSource([...s, ...l], 'bookworm')?.uris).toEqual([MIRROR]);
    expect(releaseSource(s, 'trixie')).toBeUndefined();
  });

  it('the backports stanza takes the release mirror and its key, inline keys included, and apt reads it back', () => {
    const release = releaseSource(parseDeb822(DEB822, 'a.sources'), 'bookworm')!;
    const stanza = suiteStanza(release, 'bookworm-backports', 'added by a test');
    const back = parseDeb822(stanza, 'b.sources');
    expect(back).toEqual([
      { file: 'b.sources', types: ['deb'], uris: [MIRROR], suites: ['bookworm-backports'], components: ['main'], signedBy: release.signedBy },
    ]);
    const inline = parseDeb822(
      `Types: deb\nURIs: ${MIRROR}\nSuites: bookworm\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF\n -----END PGP PUBLIC KEY BLOCK-----\n`,
      'c.sources',
    );
    expect(inline[0]!.signedBy).toBe('\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n.\nmQINBF\n-----END PGP PUBLIC KEY BLOCK-----');
    expect(parseDeb822(suiteStanza(inline[0]!, 'bookworm-backports', 'x'), 'd.sources')[0]!.signedBy).toBe(inline[0]!.signedBy);
    // Both files of a directory laid out like /etc/apt.
    const etc = join(tmp, 'etc-apt');
    mkdirSync(join(etc, 'sources.list.d'), { recursive: true });
    writeFileSync(join(etc, 'sources.list'), `deb ${MIRROR} bookworm main\n`);
    writeFileSync(join(etc, 'sources.list.d', 'bp.sources'), stanza);
    writeFileSync(join(etc, 'sources.list.d', 'off.list.disabled'), `deb ${MIRROR} sid main\n`);
    expect(readAptSources(etc).map((x) => x.suites[0])).toEqual(['bookworm', 'bookworm-backports']);
  });
});

describe('versions', () => {
  it('compares the upstream part of Debian versions against the minimums', () => {
    expect(upstreamVersion('1:10.0.2+ds-2+deb13u1~bpo12+1')).toEqual([10, 0, 2]);
    expect(upstreamVersion('1:7.2+dfsg-7+deb12u18+b3')).toEqual([7, 2]);
    expect(upstreamVersion('11.3.0-2~bpo12+1')).toEqual([11, 3, 0]);
    expect(atLeast([10, 0, 2], MIN_QEMU)).toBe(true);
    expect(atLeast([7, 2], MIN_QEMU)).toBe(false);
    expect(atLeast([9, 0, 0], MIN_LIBVIRT)).toBe(false);
    expect(atLeast([11, 2, 9], MIN_LIBVIRT)).toBe(false);
    expect(atLeast([12], MIN_LIBVIRT)).toBe(true);
    expect(
      belowMinimum(
        { 'qemu-system-x86': '1:7.2+dfsg-7+deb12u18+b3', 'qemu-utils': '1:10.0.2+ds-2', 'libvirt-daemon': '9.0.0-4+deb12u2' },
        {
          'qemu-system-x86': MIN_QEMU,
          'qemu-utils': MIN_QEMU,
          'qemu-system-data': MIN_QEMU,
          'libvirt-daemon': MIN_LIBVIRT,
        },
      ),
    ).toEqual(['qemu-system-x86', 'qemu-system-data', 'libvirt-daemon']);
  });

  it('picks the newest QEMU 7.2 outside backports, per package, from apt-cache madison', () => {
    const madison = [
      `qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | ${MIRROR} bookworm-backports/main amd64 Packages`,
      `qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | ${MIRROR} bookworm/main amd64 Packages`,
      `qemu-system-x86 | 1:7.2+dfsg-7+deb12u15 | ${MIRROR}-security bookworm-security/main amd64 Packages`,
      `qemu-system-common | 1:7.2+dfsg-7+deb12u18+b3 | ${MIRROR} bookworm/main amd64 Packages`,
      `qemu-system-data | 1:7.20+x-1 | ${MIRROR} sid/main all Packages`,
      `qemu-system-data | 1:7.2+dfsg-7+deb12u18 | ${MIRROR} bookworm/main all Packages`,
    ].join('\n');
    const entries = parseMadison(madison);
    expect(entries[0]).toEqual({ pkg: 'qemu-system-x86', version: '1:10.0.2+ds-2+deb13u1~bpo12+1', suite: 'bookworm-backports/main' });
    expect(pickCompatVersions(entries)).toEqual({
      'qemu-system-x86': '1:7.2+dfsg-7+deb12u18+b3',
      'qemu-system-common': '1:7.2+dfsg-7+deb12u18+b3',
      'qemu-system-data': '1:7.2+dfsg-7+deb12u18',
    });
    // A package with no 7.2 at all: nothing to unpack, said by the caller.
    expect(pickCompatVersions(entries.filter((e) => e.pkg !== 'qemu-system-common'))).toBeUndefined();
  });
});

describe('on this machine (set up)', () => {
  it('QEMU >= 10 and libvirt >= 11.3 are installed, the compat QEMU 7.2 is present, and a second setup does nothing, fast', () => {
    expect(outdatedPackages(true)).toEqual([]);
    expect(compatQemuPresent()).toBe(true);
    const started = Date.now();
    const lines: string[] = [];
    ensureHostPackages((l) => lines.push(l), true);
    expect(ensureCompatQemu((l) => lines.push(l)).dir).toBe(compatQemu().dir);
    expect(lines).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
