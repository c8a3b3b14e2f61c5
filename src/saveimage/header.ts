// The libvirt QEMU save-image header, byte-compatible with libvirt: layout in
// header-layout, encoding and decoding in header-codec, the image file in
// header-file.
export { SaveFormat, type SaveFormatName } from '../common/save-formats.js';
export {
  DEFAULT_MAX_HEADER_BYTES,
  SAVE_HEADER_SIZE,
  SAVE_MAGIC,
  SAVE_MAGIC_PARTIAL,
  SAVE_VERSION,
  SAVE_XML_PADDING_BYTES,
  type ByteOrder,
  type DecodeOptions,
  type EncodeSaveHeaderOptions,
  type ReadSaveHeaderOptions,
  type SaveImageHeader,
} from './header-layout.js';
export { decodeSaveHeader, decodeSaveHeaderAllowPartial, encodeSaveHeader } from './header-codec.js';
export { markSaveImageComplete, readSaveHeader, rewriteSaveImageXml } from './header-file.js';
