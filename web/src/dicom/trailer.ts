// Bytes after a file's data set. Scanners and anonymisers leave trailers (megabytes of zero
// bytes after the pixel data, in one real MR series); pydicom reads such files, but dwv parses
// every eight zero bytes as a (0000,0000) element with a console warning, which froze the page
// for tens of seconds. The viewer therefore hands dwv each file only up to the end of its last
// top-level data element.
import { ITEM, SEQUENCE_END, UNDEFINED } from './elements';
import { parsePart10 } from './part10';

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const DEFLATED = '1.2.840.10008.1.2.1.99';
const ITEM_END = 0xfffee00d;
/** (FFFC,FFFC) Data Set Trailing Padding: allowed at the end of a data set, never meaningful. */
const TRAILING_PADDING = 0xfffcfffc;
const PIXEL_DATA = 0x7fe00010;

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const SHORT_VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'PN',
  'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US']);

/** The structure below the top level ended early or is not what it claims: keep the file. */
class Malformed extends Error {}

interface Reader {
  view: DataView;
  little: boolean;
  explicit: boolean;
}

function tagAt(r: Reader, offset: number): number {
  return ((r.view.getUint16(offset, r.little) << 16) | r.view.getUint16(offset + 2, r.little)) >>> 0;
}

function u32(r: Reader, offset: number): number {
  return r.view.getUint32(offset, r.little);
}

function need(r: Reader, offset: number, bytes: number): void {
  if (offset + bytes > r.view.byteLength) throw new Malformed();
}

/** Header of the element at `offset`: its tag, VR ('' when implicit or for items), value
 *  start and length; null when the bytes there cannot start an element of a data set. */
function header(r: Reader, offset: number): { tag: number; vr: string; valueStart: number; length: number } | null {
  if (offset + 8 > r.view.byteLength) return null;
  const tag = tagAt(r, offset);
  if (tag >>> 16 === 0xfffe) return { tag, vr: '', valueStart: offset + 8, length: u32(r, offset + 4) };
  if (!r.explicit) return { tag, vr: '', valueStart: offset + 8, length: u32(r, offset + 4) };
  const vr = String.fromCharCode(r.view.getUint8(offset + 4), r.view.getUint8(offset + 5));
  if (LONG_VRS.has(vr)) {
    if (offset + 12 > r.view.byteLength) return null;
    return { tag, vr, valueStart: offset + 12, length: u32(r, offset + 8) };
  }
  if (SHORT_VRS.has(vr)) return { tag, vr, valueStart: offset + 8, length: r.view.getUint16(offset + 6, r.little) };
  return null; // not a VR: the data set has ended
}

/** Past the element at `offset` (delimited sequences and pixel data walked through). */
function skipElement(r: Reader, offset: number): number {
  const h = header(r, offset);
  if (!h) throw new Malformed();
  if (h.length !== UNDEFINED) {
    need(r, h.valueStart, h.length);
    return h.valueStart + h.length;
  }
  if (h.tag === ITEM) return skipItemBody(r, h.valueStart);
  // Encapsulated pixel data holds fragments, a sequence items; the items of a UN sequence of
  // undefined length are implicit VR little endian.
  if (h.vr === 'UN' && h.tag !== PIXEL_DATA) return skipItems({ ...r, little: true, explicit: false }, h.valueStart);
  return skipItems(r, h.valueStart);
}

function skipItemBody(r: Reader, offset: number): number {
  for (;;) {
    need(r, offset, 8);
    if (tagAt(r, offset) === ITEM_END) return offset + 8;
    offset = skipElement(r, offset);
  }
}

function skipItems(r: Reader, offset: number): number {
  for (;;) {
    need(r, offset, 8);
    const tag = tagAt(r, offset);
    if (tag === SEQUENCE_END) return offset + 8;
    if (tag !== ITEM) throw new Malformed();
    const length = u32(r, offset + 4);
    if (length === UNDEFINED) {
      offset = skipItemBody(r, offset + 8);
    } else {
      need(r, offset + 8, length);
      offset += 8 + length;
    }
  }
}

/** Where the file's data set ends: just past its last top-level data element, before any
 *  trailing padding (FFFC,FFFC) and before bytes that cannot be an element — zero bytes read
 *  as (0000,0000), which no data set holds, a VR that is not one, a stray item tag, or fewer
 *  than eight bytes. The whole length when the file cannot be walked (a deflated data set, an
 *  element that runs past the end): then nothing is cut. */
export function datasetEnd(input: ArrayBuffer | Uint8Array): number {
  const file = parsePart10(input);
  const size = file.bytes.length;
  if (file.transferSyntax === DEFLATED) return size;
  const r: Reader = { view: file.view, little: file.transferSyntax !== EXPLICIT_BE,
    explicit: file.transferSyntax !== IMPLICIT_LE };
  let offset = file.datasetStart;
  try {
    for (;;) {
      const h = header(r, offset);
      if (!h || h.tag >>> 16 === 0 || h.tag >>> 16 === 0xfffe || h.tag === TRAILING_PADDING) return offset;
      offset = skipElement(r, offset);
    }
  } catch (err) {
    if (err instanceof Malformed || err instanceof RangeError) return size;
    throw err;
  }
}

/** The file without what follows its data set, and how many bytes were cut. The buffer is
 *  returned as it is when nothing follows. */
export function trimTrailer(buffer: ArrayBuffer): { buffer: ArrayBuffer; trimmed: number } {
  const end = datasetEnd(buffer);
  if (end >= buffer.byteLength) return { buffer, trimmed: 0 };
  return { buffer: buffer.slice(0, end), trimmed: buffer.byteLength - end };
}
