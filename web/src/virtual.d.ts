declare module 'virtual:privacy-policy' {
  const text: string;
  export default text;
  /** The policy's effective date (its version), read at build time. */
  export const version: string;
}

// CharLS (JPEG-LS) compiled to WebAssembly: an Emscripten module factory.
declare module '@cornerstonejs/codec-charls/decodewasmjs' {
  const factory: (options?: { locateFile?: (path: string, prefix: string) => string }) =>
    Promise<import('./dicom/charls').CharLSModule>;
  export default factory;
}
