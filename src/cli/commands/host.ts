// virsh's capabilities, for a vmferry host: what the host's worker last reported of itself
// (its inventory, cli/inventory.ts), above all what its QEMU can do as the worker probed it
// at start: version, machine types and their aliases, migration capabilities and
// parameters, and the commands migrations rely on. --json prints the whole host info.
import type { HostInfo } from '../../common/domain-types.js';
import { UsageError } from '../exit-codes.js';
import { readInventory } from '../inventory.js';
import type { Verb, VerbContext } from '../verb.js';

function row(ctx: VerbContext, label: string, value: string): void {
  ctx.out(`${`${label}:`.padEnd(24)}${value}`);
}

export function printCapabilities(ctx: VerbContext, h: HostInfo): void {
  row(ctx, 'Host', `${h.name} (${h.hostname}, UUID ${h.hostUuid})`);
  row(ctx, 'Migration protocols', h.protocolVersions.map((v) => `v${v}`).join(', '));
  const q = h.qemu;
  if (q === undefined) {
    row(ctx, 'QEMU', 'not probed yet (the worker probes it at start)');
    return;
  }
  row(ctx, 'QEMU', `${q.version}${q.package ? ` (${q.package})` : ''} ${q.binary}`);
  row(ctx, 'Accelerators', q.accels.map((a) => a.accel).join(', '));
  const aliasesOf = (name: string): string[] => Object.keys(q.machineAliases).filter((a) => q.machineAliases[a] === name);
  row(ctx, 'Machine types', String(q.machines.length));
  // The default and the aliased types first, then the rest newest first (QEMU lists them in no order).
  const rank = (m: string): number => (m === q.defaultMachine ? 0 : aliasesOf(m).length > 0 ? 1 : 2);
  const ordered = [...q.machines].sort((x, y) => rank(x) - rank(y) || y.localeCompare(x, 'en', { numeric: true }));
  for (const m of ordered) {
    const notes = [...aliasesOf(m).map((a) => `alias ${a}`), ...(m === q.defaultMachine ? ['default'] : [])];
    ctx.out(`  ${m}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`);
  }
  row(ctx, 'Migration capabilities', q.migrationCapabilities.join(' '));
  row(ctx, 'Migration parameters', q.migrationParameters.join(' '));
  row(ctx, 'Commands', q.commands.join(' '));
  row(ctx, 'Probed', `${new Date(q.probedAtMs).toISOString()} in ${q.durationMs} ms`);
}

export const hostVerbs: Record<string, Verb> = {
  capabilities: {
    summary: "a host's QEMU: version, machine types, migration capabilities and parameters",
    usage: 'vmferry capabilities',
    async run(ctx, args) {
      if (args.length > 0) throw new UsageError('usage: vmferry capabilities (the host is --host or VMFERRY_HOST)');
      const info = (await readInventory(ctx.client, ctx.host)).hostInfo;
      printCapabilities(ctx, info);
      return info;
    },
  },
};
