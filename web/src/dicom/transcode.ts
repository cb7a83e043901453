// Transfer syntaxes dwv cannot read, turned into Explicit VR Little Endian in the browser.
import { DEFLATED, transcodeDeflated } from './deflated';
import { JPEG_LS, transcodeJpegLs, type FrameDecoder } from './jpegls';
import { parsePart10 } from './part10';

export const TRANSCODED = new Set([DEFLATED, ...JPEG_LS]);

export function needsTranscode(transferSyntax: string | undefined): boolean {
  return !!transferSyntax && TRANSCODED.has(transferSyntax);
}

/** The file as Explicit VR Little Endian with native pixel data, or as it is when dwv reads
 *  its transfer syntax already. The JPEG-LS decoder is asked for only when needed. */
export async function transcode(input: ArrayBuffer | Uint8Array, jpegLs: () => Promise<FrameDecoder>
): Promise<Uint8Array> {
  const file = parsePart10(input);
  if (file.transferSyntax === DEFLATED) return transcodeDeflated(file);
  if (JPEG_LS.has(file.transferSyntax)) return transcodeJpegLs(file, await jpegLs());
  return file.bytes;
}
