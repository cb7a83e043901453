declare module 'virtual:privacy-policy' {
  const text: string;
  export default text;
  /** The policy's effective date (its version), read at build time. */
  export const version: string;
}

declare module 'virtual:processors' {
  /** The services that hold personal data (infra/processors.json, read at build time). */
  const rows: { name: string; entity: string; purpose: string; data: string; location: string;
    privacy: string; dpa: string }[];
  export default rows;
}

// CharLS (JPEG-LS) compiled to WebAssembly: an Emscripten module factory.
declare module '@cornerstonejs/codec-charls/decodewasmjs' {
  const factory: (options?: { locateFile?: (path: string, prefix: string) => string }) =>
    Promise<import('./dicom/charls').CharLSModule>;
  export default factory;
}
