// Which QEMU this test run's host workers run: the system's, or (the compat lane of
// scripts/test-lanes.ts) QEMU 7.2, named in the run's environment. A test of something
// QEMU 7.2 lacks asserts the refusal there (ConfigUnsupported naming what is missing)
// instead of the feature.
import { compatQemu } from '../../src/local/compat-qemu.js';

export const onCompatQemu = process.env.VMFERRY_QEMU_BINARY === compatQemu().binary;
