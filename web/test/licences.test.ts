import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { noticeText, packageDirOf, packagesOf } from '../vite-licences';

const nm = resolve(import.meta.dirname, '../node_modules');

describe('third-party licence notice', () => {
  it('finds the package of a bundled module', () => {
    expect(packageDirOf(join(nm, 'dwv/dist/dwv.min.js'))).toBe(join(nm, 'dwv'));
    expect(packageDirOf(join(nm, '@firebase/app/dist/esm/index.esm.js?commonjs-proxy')))
      .toBe(join(nm, '@firebase/app'));
    expect(packageDirOf('/work/web/src/main.ts')).toBeNull();
    expect(packageDirOf('\0vite/preload-helper.js')).toBeNull();
  });

  it('lists each package once with its licence id and full text', () => {
    const packages = packagesOf([join(nm, 'dwv/dist/dwv.min.js'), join(nm, 'dwv/dist/assets/workers/rle.worker.min.js'),
      join(nm, '@firebase/app/dist/esm/index.esm.js'), join(nm, '@cornerstonejs/codec-charls/dist/charlswasm_decode.js'),
      resolve(import.meta.dirname, '../src/main.ts')]);
    expect(packages.map((p) => p.name)).toEqual(['@cornerstonejs/codec-charls', '@firebase/app', 'dwv']);
    const dwv = packages.find((p) => p.name === 'dwv')!;
    expect(dwv.license).toBe('GPL-3.0');
    expect(dwv.text).toContain('GNU GENERAL PUBLIC LICENSE');
    expect(dwv.text).toContain('pdf.js');
    // @firebase/app ships no licence file: the standard Apache-2.0 text is printed once.
    const text = noticeText(packages, 'https://example.test/source');
    expect(text).toMatch(/^dwv\s+0\.36\.4\s+GPL-3\.0$/m);
    expect(text).toMatch(/^@cornerstonejs\/codec-charls\s+1\.2\.7\s+MIT$/m);
    expect(text.match(/Apache License\s+Version 2\.0/g)).toHaveLength(1);
    expect(text).toContain('corresponding source: https://example.test/source');
  });
});
