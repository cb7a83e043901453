// The DICOM file format (PS3.10): a 128-byte preamble, "DICM", the file meta group (group
// 0002, always explicit VR little endian) and the dataset in the file's transfer syntax.
// Rewriting a file for the browser viewer keeps the meta elements but names another
// transfer syntax, so the group length (0002,0000) is computed again.
import { readElement, tagOf, textValue, type Element } from './elements';

export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const TRANSFER_SYNTAX = tagOf(0x0002, 0x0010);
const GROUP_LENGTH = tagOf(0x0002, 0x0000);

export interface Part10 {
  bytes: Uint8Array;
  view: DataView;
  meta: Element[];
  transferSyntax: string;
  /** Where the dataset starts (just past the meta group). */
  datasetStart: number;
}

export function parsePart10(input: ArrayBuffer | Uint8Array): Part10 {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 132 || String.fromCharCode(...bytes.subarray(128, 132)) !== 'DICM') {
    throw new Error('not a DICOM file (no "DICM" after the preamble)');
  }
  // The meta group is the run of group-0002 elements; its length element may be wrong or
  // missing in the wild, so it is walked rather than trusted.
  const meta: Element[] = [];
  let offset = 132;
  while (offset + 8 <= bytes.length && view.getUint16(offset, true) === 0x0002) {
    const el = readElement(view, offset, true);
    meta.push(el);
    offset = el.end;
  }
  const ts = meta.find((e) => e.tag === TRANSFER_SYNTAX);
  if (!ts) throw new Error('the file meta group has no transfer syntax');
  return { bytes, view, meta, transferSyntax: textValue(view, ts), datasetStart: offset };
}

/** One explicit VR little-endian element: a 16-bit length, or with ``long`` (OB, OW, ...)
 *  two reserved bytes and a 32-bit length. */
function element(tag: number, vr: string, value: Uint8Array, long: boolean): Uint8Array {
  const head = long ? 12 : 8;
  const out = new Uint8Array(head + value.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, tag >>> 16, true);
  v.setUint16(2, tag & 0xffff, true);
  out[4] = vr.charCodeAt(0);
  out[5] = vr.charCodeAt(1);
  if (long) v.setUint32(8, value.length, true);
  else v.setUint16(6, value.length, true);
  out.set(value, head);
  return out;
}

/** One explicit VR little-endian element with a short (16-bit) length. */
export function shortElement(tag: number, vr: string, value: Uint8Array): Uint8Array {
  return element(tag, vr, value, false);
}

/** One explicit VR little-endian element with a long (32-bit) length (OB, OW, ...). */
export function longElement(tag: number, vr: string, value: Uint8Array): Uint8Array {
  return element(tag, vr, value, true);
}

/** A UI value: ASCII, padded with NUL to an even length. */
export function uidValue(uid: string): Uint8Array {
  const out = new Uint8Array(uid.length + (uid.length % 2));
  for (let i = 0; i < uid.length; i += 1) out[i] = uid.charCodeAt(i);
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Preamble, "DICM" and the meta group of `file`, naming `transferSyntax` instead. */
export function rewriteMeta(file: Part10, transferSyntax: string): Uint8Array {
  const elements = file.meta.filter((e) => e.tag !== GROUP_LENGTH).map((e) => e.tag === TRANSFER_SYNTAX
    ? shortElement(TRANSFER_SYNTAX, 'UI', uidValue(transferSyntax))
    : file.bytes.subarray(e.start, e.end));
  const body = concat(elements);
  const groupLength = new Uint8Array(4);
  new DataView(groupLength.buffer).setUint32(0, body.length, true);
  return concat([file.bytes.subarray(0, 132), shortElement(GROUP_LENGTH, 'UL', groupLength), body]);
}
