import { describe, expect, it } from 'vitest';
import CharLS from '@cornerstonejs/codec-charls/decodewasmjs';
import { charlsFrameDecoder } from '../src/dicom/charls';
import { DEFLATED, transcodeDeflated } from '../src/dicom/deflated';
import { encapsulatedFrames } from '../src/dicom/encapsulated';
import { readElement, tagOf, textValue, uint16Value, walk, type Element } from '../src/dicom/elements';
import { transcodeJpegLs, type FrameDecoder } from '../src/dicom/jpegls';
import { concat, EXPLICIT_VR_LE, longElement, parsePart10, rewriteMeta, shortElement, uidValue } from '../src/dicom/part10';
import { needsTranscode, transcode } from '../src/dicom/transcode';
import { pydicomFile } from './pydicom-files';

const PIXEL_DATA = tagOf(0x7fe0, 0x0010);
const ROWS = tagOf(0x0028, 0x0010);

function dataset(bytes: Uint8Array) {
  const file = parsePart10(bytes);
  const explicit = file.transferSyntax !== '1.2.840.10008.1.2';
  const els = walk(file.view, file.datasetStart, bytes.length, explicit);
  const get = (tag: number) => els.find((e) => e.tag === tag);
  const pixels = (el: Element | undefined = get(PIXEL_DATA)) =>
    el ? bytes.subarray(el.valueStart, el.valueStart + el.length) : undefined;
  return { file, els, get, pixels };
}

/** The meta group's length element agrees with the bytes of the group. */
function metaIsConsistent(bytes: Uint8Array): boolean {
  const file = parsePart10(bytes);
  const length = file.view.getUint32(file.meta[0].valueStart, true);
  return file.meta[0].tag === tagOf(2, 0) && file.meta[0].end + length === file.datasetStart;
}

async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const charls = charlsFrameDecoder(await CharLS());

describe('DICOM element walker', () => {
  it.each([
    'CT_small.dcm', 'MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_RLE.dcm', 'rtplan.dcm',
    'MR_small_jpeg_ls_lossless.dcm', 'emri_small_jpeg_ls_lossless.dcm', 'JPEG2000.dcm',
  ])('walks %s to its last byte', (name) => {
    const bytes = pydicomFile(name);
    const { els, get } = dataset(bytes);
    expect(els.at(-1)!.end).toBeGreaterThan(bytes.length - 8);
    for (let i = 1; i < els.length; i += 1) expect(els[i].tag).toBeGreaterThan(els[i - 1].tag);
    if (name !== 'rtplan.dcm') expect(get(PIXEL_DATA)).toBeDefined();
  });

  it('skips nested sequences and items of undefined length', () => {
    // (0008,1115) SQ undefined → item undefined → (0008,1140) SQ undefined → item → (0008,1150) UI
    const ui = shortElement(tagOf(0x0008, 0x1150), 'UI', uidValue('1.2.3'));
    const item = (body: Uint8Array) => concat([new Uint8Array([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]),
      body, new Uint8Array([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0])]);
    const seq = (group: number, element: number, body: Uint8Array) => concat([
      new Uint8Array([group & 0xff, group >> 8, element & 0xff, element >> 8, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff]),
      body, new Uint8Array([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])]);
    // The inner sequence delimiter comes first: a search for it would stop there.
    const bytes = concat([seq(0x0008, 0x1115, item(seq(0x0008, 0x1140, item(ui)))),
      shortElement(ROWS, 'US', new Uint8Array([7, 0]))]);
    const view = new DataView(bytes.buffer);
    const els = walk(view, 0, bytes.length);
    expect(els.map((e) => e.tag)).toEqual([tagOf(0x0008, 0x1115), ROWS]);
    expect(uint16Value(view, els[1])).toBe(7);
    expect(() => readElement(view, 0, true).end).not.toThrow();
    const truncated = new DataView(bytes.buffer, 0, bytes.length - 14); // into the outer delimiter
    expect(() => walk(truncated, 0, truncated.byteLength)).toThrow(/ends early/);
  });
});

describe('encapsulated frames', () => {
  const frag = (...b: number[]) => concat([new Uint8Array([0xfe, 0xff, 0x00, 0xe0, b.length, 0, 0, 0]), new Uint8Array(b)]);
  const pixelData = (table: number[], ...fragments: Uint8Array[]) => {
    const t = new Uint8Array(table.length * 4);
    table.forEach((v, i) => new DataView(t.buffer).setUint32(i * 4, v, true));
    const bytes = concat([new Uint8Array([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]),
      frag(...t), ...fragments, new Uint8Array([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])]);
    const view = new DataView(bytes.buffer);
    return { view, el: readElement(view, 0, true) };
  };
  const frames = (p: ReturnType<typeof pixelData>, n: number) => encapsulatedFrames(p.view, p.el, n).map((f) => [...f]);

  it('uses the basic offset table', () => {
    // Fragments of 2, 2 and 2 bytes (10 bytes each with the item header): frame 2 at 20.
    const p = pixelData([0, 20], frag(0xff, 0xd8), frag(1, 2), frag(0xff, 0xd8));
    expect(frames(p, 2)).toEqual([[0xff, 0xd8, 1, 2], [0xff, 0xd8]]);
  });
  it('takes one fragment per frame, or splits at start-of-image markers', () => {
    expect(frames(pixelData([], frag(1, 2), frag(3, 4)), 2)).toEqual([[1, 2], [3, 4]]);
    const p = pixelData([], frag(0xff, 0xd8), frag(5, 6), frag(0xff, 0xd8), frag(7, 8));
    expect(frames(p, 2)).toEqual([[0xff, 0xd8, 5, 6], [0xff, 0xd8, 7, 8]]);
    expect(frames(p, 1)).toEqual([[0xff, 0xd8, 5, 6, 0xff, 0xd8, 7, 8]]);
    expect(() => frames(p, 3)).toThrow(/3 frames expected/);
  });
});

describe('deflated to explicit VR little endian', () => {
  it('inflates a deflated copy of CT_small back to the original bytes', async () => {
    const original = pydicomFile('CT_small.dcm');
    const { file } = dataset(original);
    let deflated = await deflateRaw(original.subarray(file.datasetStart));
    if (deflated.length % 2) deflated = concat([deflated, new Uint8Array(1)]); // as writers pad it
    const input = concat([rewriteMeta(file, DEFLATED), deflated]);
    expect(parsePart10(input).transferSyntax).toBe(DEFLATED);
    expect(metaIsConsistent(input)).toBe(true);
    const out = await transcode(input, () => Promise.reject(new Error('not needed')));
    expect(out.length).toBe(original.length);
    expect(Buffer.from(out).equals(Buffer.from(original))).toBe(true);
  });

  it('reads pydicom\'s image_dfl.dcm', async () => {
    const out = await transcodeDeflated(parsePart10(pydicomFile('image_dfl.dcm')));
    const { file, get, pixels } = dataset(out);
    expect(file.transferSyntax).toBe(EXPLICIT_VR_LE);
    expect(metaIsConsistent(out)).toBe(true);
    expect(uint16Value(file.view, get(ROWS)!)).toBe(512);
    const px = pixels()!;
    expect(px.length).toBe(512 * 512);
    expect(new Set(px).size).toBeGreaterThan(10); // an image, not a constant
    expect(textValue(file.view, get(tagOf(0x0008, 0x0060))!)).toBe('OT');
  });

  it('fails with a message on a broken stream', async () => {
    const { file } = dataset(pydicomFile('CT_small.dcm'));
    const input = concat([rewriteMeta(file, DEFLATED), new Uint8Array([1, 2, 3, 4, 5, 6])]);
    await expect(transcodeDeflated(parsePart10(input))).rejects.toThrow(/could not be inflated/);
  });
});

describe('JPEG-LS to native pixel data', () => {
  it.each([
    ['MR_small_jpeg_ls_lossless.dcm', 'MR_small.dcm'],
    ['emri_small_jpeg_ls_lossless.dcm', 'emri_small.dcm'],
  ])('decodes %s to the pixels of %s (lossless)', async (jls, native) => {
    const out = await transcode(pydicomFile(jls), async () => charls);
    const got = dataset(out);
    const want = dataset(pydicomFile(native));
    expect(got.file.transferSyntax).toBe(EXPLICIT_VR_LE);
    expect(metaIsConsistent(out)).toBe(true);
    expect(got.get(PIXEL_DATA)!.vr).toBe('OW');
    expect(Buffer.from(got.pixels()!).equals(Buffer.from(want.pixels()!))).toBe(true);
    // Every other element comes through unchanged.
    const others = (d: typeof got) => d.els.filter((e) => e.tag !== PIXEL_DATA).map((e) => e.tag);
    expect(others(got)).toEqual(others(dataset(pydicomFile(jls))));
  });

  it('decodes near-lossless JPEG-LS as pydicom (pyjpegls) does', async () => {
    const out = await transcode(pydicomFile('JPEGLSNearLossless_16.dcm'), async () => charls);
    const px = new Uint16Array(dataset(out).pixels()!.slice().buffer);
    expect(px.length).toBe(50 * 10);
    // pydicom's pixel_array: column 0 falls in bands of five rows; the sum of all pixels.
    const bands = [65535, 32765, 16385, 4095, 1025, 255, 65, 15, 5, 0];
    expect(Array.from({ length: 50 }, (_, r) => px[r * 10])).toEqual(bands.flatMap((v) => [v, v, v, v, v]));
    expect(px.reduce((a, b) => a + b, 0)).toBe(6007250);
  });

  it('sign-extends signed samples narrower than the allocated bits', () => {
    const { file } = dataset(pydicomFile('MR_small_jpeg_ls_lossless.dcm'));
    const us = (g: number, e: number, v: number) => shortElement(tagOf(g, e), 'US', new Uint8Array([v & 0xff, v >> 8]));
    const body = concat([us(0x28, 0x10, 1), us(0x28, 0x11, 2), us(0x28, 0x100, 16), us(0x28, 0x103, 1),
      concat([new Uint8Array([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0, 0xfe, 0xff, 0x00, 0xe0, 2, 0, 0, 0, 0xff, 0xd8,
        0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])])]);
    const fake: FrameDecoder = () => ({ width: 2, height: 1, bitsPerSample: 12, components: 1, interleave: 0,
      pixels: new Uint8Array(new Uint16Array([0xfff, 0x7ff]).buffer) });
    const out = transcodeJpegLs(parsePart10(concat([rewriteMeta(file, file.transferSyntax), body])), fake);
    expect([...new Int16Array(dataset(out).pixels()!.slice().buffer)]).toEqual([-1, 2047]);
    const wrongSize: FrameDecoder = () => ({ ...fake(new Uint8Array()), width: 3 });
    expect(() => transcodeJpegLs(parsePart10(concat([rewriteMeta(file, file.transferSyntax), body])), wrongSize))
      .toThrow(/header says 2×1×1/);
  });

  it('leaves what dwv reads alone, and says which syntaxes it rewrites', async () => {
    const ct = pydicomFile('CT_small.dcm');
    expect(await transcode(ct, () => Promise.reject(new Error('not needed')))).toBe(ct);
    expect(needsTranscode('1.2.840.10008.1.2.4.80')).toBe(true);
    expect(needsTranscode(DEFLATED)).toBe(true);
    expect(needsTranscode('1.2.840.10008.1.2.5')).toBe(false);
    expect(needsTranscode(undefined)).toBe(false);
    expect(() => parsePart10(new Uint8Array(200))).toThrow(/DICM/);
    expect(longElement(PIXEL_DATA, 'OW', new Uint8Array(2)).length).toBe(14);
  });
});
