// JPEG-LS (1.2.840.10008.1.2.4.80 lossless, .81 near-lossless) to native pixel data in
// Explicit VR Little Endian: every frame is decoded (the decoder is passed in, so this
// module stays pure and testable) and the pixel data element is written uncompressed.
import { encapsulatedFrames } from './encapsulated';
import { tagOf, textValue, uint16Value, walk, type Element } from './elements';
import { concat, EXPLICIT_VR_LE, longElement, rewriteMeta, shortElement, type Part10 } from './part10';

export const JPEG_LS = new Set(['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81']);

export interface DecodedFrame {
  width: number;
  height: number;
  bitsPerSample: number;
  components: number;
  /** 0: planar (one plane per component), 1: line, 2: sample interleaved. */
  interleave: number;
  /** Samples, one byte each up to 8 bits, else two bytes little endian. */
  pixels: Uint8Array;
}

export type FrameDecoder = (encoded: Uint8Array) => DecodedFrame;

const T = {
  samplesPerPixel: tagOf(0x0028, 0x0002),
  planarConfiguration: tagOf(0x0028, 0x0006),
  numberOfFrames: tagOf(0x0028, 0x0008),
  rows: tagOf(0x0028, 0x0010),
  columns: tagOf(0x0028, 0x0011),
  bitsAllocated: tagOf(0x0028, 0x0100),
  pixelRepresentation: tagOf(0x0028, 0x0103),
  pixelData: tagOf(0x7fe0, 0x0010),
};

function us(view: DataView, els: Element[], tag: number, fallback?: number): number {
  const el = els.find((e) => e.tag === tag);
  if (el && el.length >= 2) return uint16Value(view, el);
  if (fallback === undefined) throw new Error(`the image has no (${(tag >>> 16).toString(16)},${(tag & 0xffff).toString(16).padStart(4, '0')})`);
  return fallback;
}

/** Samples of `frame` as the dataset's native pixel cells (BitsAllocated 8 or 16). */
function nativeSamples(frame: DecodedFrame, bitsAllocated: number, signed: boolean): Uint8Array {
  const wide = frame.bitsPerSample > 8;
  if (bitsAllocated === 8) {
    if (wide) throw new Error(`${frame.bitsPerSample}-bit samples do not fit BitsAllocated 8`);
    return frame.pixels;
  }
  if (bitsAllocated !== 16) throw new Error(`BitsAllocated ${bitsAllocated} is not supported`);
  const count = frame.pixels.length / (wide ? 2 : 1);
  const src = wide ? new Uint16Array(frame.pixels.buffer, frame.pixels.byteOffset, count) : frame.pixels;
  const out = new Uint16Array(count);
  // JPEG-LS codes a signed sample's bit pattern in P bits; native cells want it sign-extended
  // to the 16 allocated bits.
  const shift = signed && frame.bitsPerSample < 16 ? 32 - frame.bitsPerSample : 0;
  for (let i = 0; i < count; i += 1) out[i] = shift ? (src[i] << shift) >> shift : src[i];
  return new Uint8Array(out.buffer);
}

export function transcodeJpegLs(file: Part10, decode: FrameDecoder): Uint8Array {
  if (!JPEG_LS.has(file.transferSyntax)) throw new Error(`not JPEG-LS: ${file.transferSyntax}`);
  const { view, bytes } = file;
  const els = walk(view, file.datasetStart, bytes.length, true);
  const pixelData = els.find((e) => e.tag === T.pixelData);
  if (!pixelData) throw new Error('the file has no pixel data');
  const rows = us(view, els, T.rows);
  const columns = us(view, els, T.columns);
  const samples = us(view, els, T.samplesPerPixel, 1);
  const bitsAllocated = us(view, els, T.bitsAllocated);
  const signed = us(view, els, T.pixelRepresentation, 0) === 1;
  const nfEl = els.find((e) => e.tag === T.numberOfFrames);
  const frames = nfEl ? Math.max(1, parseInt(textValue(view, nfEl), 10) || 1) : 1;

  let interleave = 2;
  const decoded = encapsulatedFrames(view, pixelData, frames).map((encoded, i) => {
    const frame = decode(encoded);
    if (frame.width !== columns || frame.height !== rows || frame.components !== samples) {
      throw new Error(`frame ${i + 1} is ${frame.width}×${frame.height}×${frame.components}, ` +
        `the header says ${columns}×${rows}×${samples}`);
    }
    interleave = frame.interleave;
    return nativeSamples(frame, bitsAllocated, signed);
  });
  let pixels = concat(decoded);
  if (pixels.length % 2) pixels = concat([pixels, new Uint8Array(1)]);

  const replace = new Map<number, Uint8Array>();
  replace.set(T.pixelData, longElement(T.pixelData, bitsAllocated > 8 ? 'OW' : 'OB', pixels));
  if (samples > 1) {
    // CharLS returns planes for non-interleaved scans and pixels for line/sample ones.
    const planar = new Uint8Array([interleave === 0 ? 1 : 0, 0]);
    replace.set(T.planarConfiguration, shortElement(T.planarConfiguration, 'US', planar));
  }
  return concat([rewriteMeta(file, EXPLICIT_VR_LE), replaceElements(bytes, els, replace)]);
}

/** The top-level elements `els` of a dataset, with some replaced or added in tag order. */
export function replaceElements(bytes: Uint8Array, els: Element[], replace: Map<number, Uint8Array>): Uint8Array {
  const pending = [...replace.keys()].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  for (const el of els) {
    while (pending.length && pending[0] < el.tag) parts.push(replace.get(pending.shift()!)!);
    if (pending[0] === el.tag) {
      parts.push(replace.get(pending.shift()!)!);
    } else {
      parts.push(bytes.subarray(el.start, el.end));
    }
  }
  for (const tag of pending) parts.push(replace.get(tag)!);
  return concat(parts);
}
