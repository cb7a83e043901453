// A minimal walker over little-endian DICOM data elements: enough to find the file meta
// group, the top-level elements of a dataset and the fragments of encapsulated pixel data,
// without interpreting values. Sequences and items of undefined length are skipped by
// walking them (a search for the delimiter would stop inside a nested sequence).

export const UNDEFINED = 0xffffffff;
export const ITEM = 0xfffee000;
export const ITEM_END = 0xfffee00d;
export const SEQUENCE_END = 0xfffee0dd;

/** VRs whose explicit header has two reserved bytes and a 32-bit length. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

export interface Element {
  tag: number;
  /** Two letters; '' in implicit VR and for item/delimiter tags. */
  vr: string;
  /** Where the element's header starts. */
  start: number;
  /** Where its value starts. */
  valueStart: number;
  /** The value length as written (UNDEFINED for undefined length). */
  length: number;
  /** Just past the element, delimiters of an undefined length included. */
  end: number;
}

export function tagOf(group: number, element: number): number {
  return ((group << 16) | element) >>> 0;
}

export function readTag(view: DataView, offset: number): number {
  return tagOf(view.getUint16(offset, true), view.getUint16(offset + 2, true));
}

function need(view: DataView, offset: number, bytes: number): void {
  if (offset + bytes > view.byteLength) {
    throw new Error(`DICOM data ends early (offset ${offset}, ${bytes} more bytes needed)`);
  }
}

/** Read the element whose header starts at `offset`. */
export function readElement(view: DataView, offset: number, explicit: boolean): Element {
  need(view, offset, 8);
  const tag = readTag(view, offset);
  let vr = '';
  let length: number;
  let valueStart: number;
  if (tag >>> 16 === 0xfffe) {
    length = view.getUint32(offset + 4, true);
    valueStart = offset + 8;
  } else if (explicit) {
    vr = String.fromCharCode(view.getUint8(offset + 4), view.getUint8(offset + 5));
    if (LONG_VRS.has(vr)) {
      need(view, offset, 12);
      length = view.getUint32(offset + 8, true);
      valueStart = offset + 12;
    } else {
      length = view.getUint16(offset + 6, true);
      valueStart = offset + 8;
    }
  } else {
    length = view.getUint32(offset + 4, true);
    valueStart = offset + 8;
  }
  let end: number;
  if (length !== UNDEFINED) {
    end = valueStart + length;
    need(view, valueStart, length);
  } else if (tag === ITEM) {
    end = skipItemBody(view, valueStart, explicit);
  } else if (tag === tagOf(0x7fe0, 0x0010)) {
    end = skipItems(view, valueStart, explicit, true); // encapsulated pixel data: fragments
  } else {
    // A sequence (SQ, or UN / implicit of undefined length, whose items are implicit VR).
    end = skipItems(view, valueStart, explicit && vr !== 'UN', false);
  }
  return { tag, vr, start: offset, valueStart, length, end };
}

/** Skip the elements of an item of undefined length, up to and past its delimiter. */
function skipItemBody(view: DataView, offset: number, explicit: boolean): number {
  for (;;) {
    need(view, offset, 8);
    if (readTag(view, offset) === ITEM_END) return offset + 8;
    offset = readElement(view, offset, explicit).end;
  }
}

/** Skip the items of a sequence (or fragments) of undefined length, past its delimiter. */
function skipItems(view: DataView, offset: number, explicit: boolean, fragments: boolean): number {
  for (;;) {
    need(view, offset, 8);
    const tag = readTag(view, offset);
    if (tag === SEQUENCE_END) return offset + 8;
    if (tag !== ITEM) throw new Error(`expected an item at offset ${offset}`);
    const length = view.getUint32(offset + 4, true);
    if (length === UNDEFINED) {
      if (fragments) throw new Error('a pixel data fragment of undefined length');
      offset = skipItemBody(view, offset + 8, explicit);
    } else {
      need(view, offset + 8, length);
      offset += 8 + length;
    }
  }
}

/** The elements of a dataset at one level, from `offset` to `end`. */
export function walk(view: DataView, offset: number, end: number, explicit = true): Element[] {
  const out: Element[] = [];
  while (offset < end) {
    // Trailing padding shorter than a header is not an element.
    if (end - offset < 8) break;
    const el = readElement(view, offset, explicit);
    out.push(el);
    offset = el.end;
  }
  return out;
}

/** The items (fragments) of encapsulated pixel data: value offsets and lengths. */
export function fragmentsOf(view: DataView, pixelData: Element): { start: number; length: number }[] {
  const out: { start: number; length: number }[] = [];
  let offset = pixelData.valueStart;
  while (offset < pixelData.end) {
    const tag = readTag(view, offset);
    if (tag === SEQUENCE_END) break;
    const length = view.getUint32(offset + 4, true);
    out.push({ start: offset + 8, length });
    offset += 8 + length;
  }
  return out;
}

export function textValue(view: DataView, el: Element): string {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + el.valueStart, el.length);
  return new TextDecoder('latin1').decode(bytes).replace(/[\0 ]+$/, '').trim();
}

export function uint16Value(view: DataView, el: Element): number {
  return view.getUint16(el.valueStart, true);
}
