// Value checks for the in-document device families (what the XML may say);
// which combinations QEMU gets is the command line's business.
import { CHARDEV_TYPES, type TreeForm, type DomainDef } from './domain-model.js';
import {
  CHANNEL_SOURCE_MODES,
  CONTROLLER_TYPES,
  INPUT_BUSES,
  INPUT_TYPES,
  LIBVIRT_CHANNEL_TARGET_TYPES,
  CHANNEL_TARGET_TYPES,
  LIBVIRT_CONTROLLER_TYPES,
  LIBVIRT_INPUT_BUSES,
  LIBVIRT_INPUT_TYPES,
  LIBVIRT_PANIC_MODELS,
  LIBVIRT_RNG_BACKEND_MODELS,
  LIBVIRT_RNG_MODELS,
  LIBVIRT_VIDEO_MODELS,
  LIBVIRT_WATCHDOG_ACTIONS,
  LIBVIRT_WATCHDOG_MODELS,
  PANIC_MODELS,
  RNG_BACKEND_MODELS,
  RNG_MODELS,
  VIDEO_MODELS,
  WATCHDOG_ACTIONS,
  WATCHDOG_MODELS,
} from './devices-more-model.js';
import { checkAddress } from './devices-validate.js';
import type { Checker } from './validate-checker.js';
import { pathStep } from '../xml/xml-errors.js';

const NAME = /^[A-Za-z0-9._-]{1,255}$/;
const D = '/domain/devices';

function each<T>(c: Checker, list: T[] | undefined, name: string, check: (item: T, path: string) => void): void {
  if (list === undefined) return;
  const items = c.list<T>(list, D, `${name} list`);
  items.forEach((item, i) => {
    const p = `${D}/${pathStep(name, i, items.length)}`;
    c.object(item, p, name);
    check(item, p);
  });
}

export function checkMoreDevices(c: Checker, def: DomainDef<TreeForm>): void {
  const d = def.devices;
  each(c, d.videos, 'video', (v, p) => {
    c.supported(VIDEO_MODELS, LIBVIRT_VIDEO_MODELS, v.model, `${p}/model/@type`, 'video model', true);
    c.optInt(v.vramKiB, 0, 2 ** 31 - 1, `${p}/model/@vram`, 'video vram');
    c.optInt(v.heads, 1, 16, `${p}/model/@heads`, 'video heads');
    checkAddress(c, v.address, p);
  });
  each(c, d.inputs, 'input', (x, p) => {
    c.supported(INPUT_TYPES, LIBVIRT_INPUT_TYPES, x.type, `${p}/@type`, 'input type', true);
    c.supported(INPUT_BUSES, LIBVIRT_INPUT_BUSES, x.bus, `${p}/@bus`, 'input bus');
    if (x.type === 'tablet' && x.bus === 'ps2') c.fail('a tablet cannot use the ps2 bus', `${p}/@bus`);
    checkAddress(c, x.address, p);
  });
  each(c, d.controllers, 'controller', (x, p) => {
    c.supported(CONTROLLER_TYPES, LIBVIRT_CONTROLLER_TYPES, x.type, `${p}/@type`, 'controller type', true);
    c.optInt(x.index, 0, 2 ** 31 - 1, `${p}/@index`, 'controller index');
    c.pattern(x.model, NAME, `${p}/@model`, 'controller model');
    c.optInt(x.ports, 1, 31, `${p}/@ports`, 'controller ports');
    checkAddress(c, x.address, p);
  });
  each(c, d.channels, 'channel', (x, p) => {
    c.oneOf(CHARDEV_TYPES, x.type, `${p}/@type`, 'channel type', true);
    c.oneOf(CHANNEL_SOURCE_MODES, x.sourceMode, `${p}/source/@mode`, 'channel source mode');
    c.absPath(x.sourcePath, `${p}/source/@path`, 'channel socket path');
    c.supported(CHANNEL_TARGET_TYPES, LIBVIRT_CHANNEL_TARGET_TYPES, x.targetType, `${p}/target/@type`, 'channel target type');
    c.pattern(x.targetName, NAME, `${p}/target/@name`, 'channel target name');
    checkAddress(c, x.address, p);
  });
  each(c, d.rngs, 'rng', (x, p) => {
    c.supported(RNG_MODELS, LIBVIRT_RNG_MODELS, x.model, `${p}/@model`, 'rng model', true);
    c.supported(RNG_BACKEND_MODELS, LIBVIRT_RNG_BACKEND_MODELS, x.backendModel, `${p}/backend/@model`, 'rng backend model', true);
    c.absPath(x.backendSource, `${p}/backend`, 'rng source');
    c.optInt(x.rateBytes, 1, 2 ** 31 - 1, `${p}/rate/@bytes`, 'rng rate bytes');
    c.optInt(x.ratePeriodMs, 1, 2 ** 31 - 1, `${p}/rate/@period`, 'rng rate period');
    checkAddress(c, x.address, p);
  });
  each(c, d.watchdogs, 'watchdog', (x, p) => {
    c.supported(WATCHDOG_MODELS, LIBVIRT_WATCHDOG_MODELS, x.model, `${p}/@model`, 'watchdog model', true);
    c.supported(WATCHDOG_ACTIONS, LIBVIRT_WATCHDOG_ACTIONS, x.action, `${p}/@action`, 'watchdog action');
    checkAddress(c, x.address, p);
  });
  each(c, d.panics, 'panic', (x, p) => {
    c.supported(PANIC_MODELS, LIBVIRT_PANIC_MODELS, x.model, `${p}/@model`, 'panic model');
    checkAddress(c, x.address, p);
  });
}
