// Real DICOM files for the tests: pydicom's test files and the pydicom-data package,
// read from the project's virtualenv (make install creates it).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const venvLib = resolve(import.meta.dirname, '../../.venv/lib');

function sitePackages(): string {
  const python = existsSync(venvLib) ? readdirSync(venvLib).find((d) => d.startsWith('python')) : undefined;
  if (!python) throw new Error(`no virtualenv at ${venvLib}: run make install`);
  return join(venvLib, python, 'site-packages');
}

/** A file from pydicom/data/test_files or, failing that, pydicom-data's data_store/data. */
export function pydicomFile(name: string): Uint8Array {
  const site = sitePackages();
  for (const dir of ['pydicom/data/test_files', 'data_store/data']) {
    const path = join(site, dir, name);
    if (existsSync(path)) return new Uint8Array(readFileSync(path));
  }
  throw new Error(`${name} is in neither pydicom's test files nor pydicom-data`);
}
