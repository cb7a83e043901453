// The JPEG-LS frame decoder on top of CharLS compiled to WebAssembly
// (@cornerstonejs/codec-charls). Loading the module is left to the caller: a worker passes
// the URL of the .wasm asset, Node (tests) reads it next to the script.
import type { DecodedFrame, FrameDecoder } from './jpegls';

interface CharLSDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  getInterleaveMode(): number;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}

export interface CharLSModule {
  JpegLSDecoder: new () => CharLSDecoder;
}

export function charlsFrameDecoder(charls: CharLSModule): FrameDecoder {
  return (encoded: Uint8Array): DecodedFrame => {
    const decoder = new charls.JpegLSDecoder();
    try {
      decoder.getEncodedBuffer(encoded.length).set(encoded);
      decoder.decode();
      const info = decoder.getFrameInfo();
      return {
        width: info.width, height: info.height, bitsPerSample: info.bitsPerSample,
        components: info.componentCount, interleave: decoder.getInterleaveMode(),
        // A view into WebAssembly memory, freed by delete(): copy it out.
        pixels: decoder.getDecodedBuffer().slice(),
      };
    } finally {
      decoder.delete();
    }
  };
}
