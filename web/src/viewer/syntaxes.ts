// Which transfer syntaxes the browser viewer shows, and their names: apart from dwv-viewer.ts
// so that the viewer page can sort a series' files before dwv's chunk has loaded.
import { needsTranscode } from '../dicom/transcode';

/** Transfer syntaxes the browser viewer decodes (dwv's decoders plus the uncompressed ones). */
const DECODABLE = new Set([
  '1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2',
  '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57',
  '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.5',
]);

export const TRANSFER_SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR little endian',
  '1.2.840.10008.1.2.1': 'Explicit VR little endian',
  '1.2.840.10008.1.2.1.99': 'Deflated',
  '1.2.840.10008.1.2.2': 'Explicit VR big endian',
  '1.2.840.10008.1.2.4.50': 'JPEG baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG extended',
  '1.2.840.10008.1.2.4.57': 'JPEG lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE lossless',
};

export function canDecode(transferSyntax: string | undefined): boolean {
  return !transferSyntax || DECODABLE.has(transferSyntax) || needsTranscode(transferSyntax);
}
