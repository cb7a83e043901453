// Runs the transcoding (inflate, JPEG-LS decode) off the main thread, so a long series does
// not freeze the page. One request at a time: {id, buffer} in, {id, buffer | error} out,
// buffers transferred, not copied.
import CharLS from '@cornerstonejs/codec-charls/decodewasmjs';
import wasmUrl from '@cornerstonejs/codec-charls/decodewasm?url';
import { charlsFrameDecoder } from '../dicom/charls';
import type { FrameDecoder } from '../dicom/jpegls';
import { transcode } from '../dicom/transcode';
import { datasetEnd } from '../dicom/trailer';

let decoder: Promise<FrameDecoder> | undefined;
// The WebAssembly module is fetched and compiled on the first JPEG-LS image only.
const jpegLs = () => (decoder ??= CharLS({ locateFile: () => wasmUrl }).then(charlsFrameDecoder));

self.onmessage = async (event: MessageEvent<{ id: number; buffer: ArrayBuffer }>) => {
  const { id, buffer } = event.data;
  try {
    // Bytes after the data set are not read (see dicom/trailer.ts).
    const out = await transcode(new Uint8Array(buffer, 0, datasetEnd(buffer)), jpegLs);
    const whole = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength
      ? out.buffer as ArrayBuffer : out.slice().buffer;
    self.postMessage({ id, buffer: whole }, { transfer: [whole] });
  } catch (err) {
    self.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
};
