// <video> on QEMU's command line. The first video is the primary (VGA
// compatible) card; a second one must be a model with a secondary variant
// (virtio, qxl), as libvirt requires. Sizes are passed only when the XML names
// them: QEMU's defaults are libvirt's (16 MiB VGA memory, 64 MiB qxl).
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import type { VideoDef } from '../../domain/devices-more-model.js';
import { pciPlacement } from './pci.js';

const DEVICES: Record<Exclude<VideoDef['model'], 'none'>, { primary: string; secondary?: string }> = {
  vga: { primary: 'VGA' },
  cirrus: { primary: 'cirrus-vga' },
  bochs: { primary: 'bochs-display' },
  virtio: { primary: 'virtio-vga', secondary: 'virtio-gpu-pci' },
  qxl: { primary: 'qxl-vga', secondary: 'qxl' },
};

function options(v: VideoDef): string {
  const o: string[] = [];
  if (v.vramKiB !== undefined) {
    if (v.model === 'vga') o.push(`vgamem_mb=${Math.max(1, Math.floor(v.vramKiB / 1024))}`);
    if (v.model === 'qxl') o.push(`vram_size=${v.vramKiB * 1024}`);
    if (v.model === 'bochs') o.push(`vgamem=${v.vramKiB * 1024}`);
  }
  if (v.heads !== undefined && (v.model === 'virtio' || v.model === 'qxl')) o.push(`max_outputs=${v.heads}`);
  return o.map((x) => `,${x}`).join('');
}

export function videoArgs(def: DomainDef): string[] {
  const videos = def.devices.videos ?? [];
  const args: string[] = [];
  videos.forEach((v, i) => {
    if (v.model === 'none') {
      if (videos.length > 1) throw vmError(ErrorType.ConfigUnsupported, `video model 'none' cannot be combined with other video devices`);
      return;
    }
    const d = DEVICES[v.model];
    const device = i === 0 ? d.primary : d.secondary;
    if (device === undefined) throw vmError(ErrorType.ConfigUnsupported, `video model '${v.model}' can only be the primary video device`);
    args.push('-device', `${device},id=video${i}${options(v)}${pciPlacement(def, v.address, `video ${v.model}`)}`);
  });
  return args;
}
