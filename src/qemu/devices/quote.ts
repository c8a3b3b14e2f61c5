/** QEMU's option parser treats ',' as a separator; a literal comma is written twice. */
export function q(value: string): string {
  return value.replace(/,/g, ',,');
}
