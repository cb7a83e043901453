import { describe, expect, it } from 'vitest';
import { tagOf, walk } from '../src/dicom/elements';
import { concat, longElement, parsePart10 } from '../src/dicom/part10';
import { datasetEnd, trimTrailer } from '../src/dicom/trailer';
import { pydicomFile } from './pydicom-files';

const PIXEL_DATA = tagOf(0x7fe0, 0x0010);
const PADDING = tagOf(0xfffc, 0xfffc);

// Every encoding the viewer meets: explicit and implicit VR, little and big endian, native
// and encapsulated pixel data (RLE, JPEG 2000, JPEG-LS, with a basic offset table or not),
// sequences of defined and undefined length, a UN element, several frames.
const FILES = ['CT_small.dcm', 'MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm',
  'emri_small_big_endian.dcm', 'MR_small_RLE.dcm', 'JPEG2000.dcm', 'MR_small_jpeg_ls_lossless.dcm',
  'rtplan.dcm', 'explicit_VR-UN.dcm', 'liver.dcm', 'emri_small.dcm', 'SC_rgb_rle_2frame.dcm',
  'color3d_jpeg_baseline.dcm', 'US1_J2KR.dcm'];

const withTail = (file: Uint8Array, tail: Uint8Array) => concat([file, tail]);

/** Where the file's own data set ends: before its trailing padding element, if it has one
 *  (CT_small.dcm does), walked with the element walker of the transcoder. */
function ownEnd(file: Uint8Array): number {
  const part = parsePart10(file);
  if (part.transferSyntax === '1.2.840.10008.1.2.2') return file.length; // no padding in these
  const els = walk(part.view, part.datasetStart, file.length, part.transferSyntax !== '1.2.840.10008.1.2');
  expect(els.at(-1)!.end).toBe(file.length);
  return els.at(-1)!.tag === PADDING ? els.at(-1)!.start : file.length;
}

/** A pydicom file without its trailing padding element. */
const bare = (name: string) => { const f = pydicomFile(name); return f.slice(0, ownEnd(f)); };

describe('the end of the data set', () => {
  it.each(FILES)('is the end of %s as written', (name) => {
    const file = pydicomFile(name);
    expect(datasetEnd(file)).toBe(ownEnd(file));
    const unpadded = file.slice(0, ownEnd(file)).buffer;
    expect(trimTrailer(unpadded)).toEqual({ buffer: unpadded, trimmed: 0 });
  });

  it.each(FILES)('comes before 2.4 MB of zero bytes after %s', (name) => {
    const file = pydicomFile(name);
    const padded = withTail(file, new Uint8Array(2_400_000));
    expect(datasetEnd(padded)).toBe(ownEnd(file));
    const { buffer, trimmed } = trimTrailer(padded.slice().buffer);
    expect(trimmed).toBe(padded.length - ownEnd(file));
    expect(Buffer.from(buffer).equals(Buffer.from(file.subarray(0, ownEnd(file))))).toBe(true);
  });

  it('comes before a few stray bytes, too few for an element', () => {
    const file = bare('MR_small.dcm');
    expect(datasetEnd(withTail(file, new Uint8Array([0, 0, 0])))).toBe(file.length);
    expect(datasetEnd(withTail(file, new Uint8Array([0x41, 0x42, 0x43, 0x44, 0x45])))).toBe(file.length);
  });

  it('comes before bytes that are not an element (no VR where one must be)', () => {
    const file = bare('MR_small.dcm');
    const junk = new TextEncoder().encode('\x10\x00\x10\x00??junk after the data set');
    expect(datasetEnd(withTail(file, junk))).toBe(file.length);
  });

  it('comes before data set trailing padding (FFFC,FFFC)', () => {
    // pydicom's MR_small_padded.dcm ends in a padding element after its pixel data.
    const file = pydicomFile('MR_small_padded.dcm');
    const end = datasetEnd(file);
    expect(end).toBeLessThan(file.length);
    expect([...file.subarray(end, end + 4)]).toEqual([0xfc, 0xff, 0xfc, 0xff]);
    const part = parsePart10(file);
    expect(walk(part.view, part.datasetStart, end).at(-1)!.tag).toBe(PIXEL_DATA);
    const padding = longElement(PADDING, 'OB', new Uint8Array(64));
    const mr = bare('MR_small.dcm');
    expect(datasetEnd(withTail(mr, padding))).toBe(mr.length);
  });

  it('keeps elements after the pixel data', () => {
    // A (FFFA,FFFA) digital signatures sequence (empty, defined length) after the pixels stays.
    const file = bare('MR_small.dcm');
    const signatures = longElement(tagOf(0xfffa, 0xfffa), 'SQ', new Uint8Array(0));
    const signed = withTail(file, signatures);
    expect(datasetEnd(signed)).toBe(signed.length);
    expect(datasetEnd(withTail(signed, new Uint8Array(1000)))).toBe(signed.length);
  });

  it('cuts nothing from a file it cannot walk', () => {
    // The last element runs past the end (a truncated file): dwv gets it as it is.
    const file = bare('MR_small.dcm');
    expect(datasetEnd(file.subarray(0, file.length - 100))).toBe(file.length - 100);
    // A deflated data set is walked only once inflated (the viewer trims after transcoding).
    const deflated = pydicomFile('image_dfl.dcm');
    expect(datasetEnd(withTail(deflated, new Uint8Array(64)))).toBe(deflated.length + 64);
  });

  it('refuses what is not a DICOM file', () => {
    expect(() => datasetEnd(new Uint8Array(200))).toThrow(/not a DICOM file/);
  });
});
