// Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99): everything after the meta
// group is one raw deflate stream (RFC 1951) of an explicit VR little-endian dataset.
// Inflating it and naming Explicit VR Little Endian in the meta gives a file dwv reads.
import { concat, EXPLICIT_VR_LE, rewriteMeta, type Part10 } from './part10';

export const DEFLATED = '1.2.840.10008.1.2.1.99';

async function inflate(data: Uint8Array, format: CompressionFormat): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The deflated dataset, inflated. Writers pad the stream to an even length with a zero
 *  byte, which a strict inflater reports as data after the end; some old writers used a
 *  zlib header (RFC 1950), which the standard does not allow but readers accept. */
export async function inflateDataset(data: Uint8Array): Promise<Uint8Array> {
  const attempts: [Uint8Array, CompressionFormat][] = [[data, 'deflate-raw']];
  if (data.length && data[data.length - 1] === 0) attempts.push([data.subarray(0, -1), 'deflate-raw']);
  if (data[0] === 0x78) attempts.push([data, 'deflate']);
  let error: unknown;
  for (const [bytes, format] of attempts) {
    try {
      return await inflate(bytes, format);
    } catch (err) {
      error = err;
    }
  }
  throw new Error(`the deflated dataset could not be inflated (${(error as Error)?.message ?? error})`);
}

export async function transcodeDeflated(file: Part10): Promise<Uint8Array> {
  if (file.transferSyntax !== DEFLATED) throw new Error(`not deflated: ${file.transferSyntax}`);
  const dataset = await inflateDataset(file.bytes.subarray(file.datasetStart));
  return concat([rewriteMeta(file, EXPLICIT_VR_LE), dataset]);
}
