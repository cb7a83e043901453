// Build-time third-party licence notice: every npm package with code in the served bundle
// (the main chunks and the workers' bundles), its version, its licence id and the full
// licence text from its package, written to /third-party-licences.txt. dwv is GPL-3.0, so
// the notice also says where the web client's source is (PACS_SOURCE_URL at build time).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import type { Plugin } from 'vite';

export interface PackageNotice {
  name: string;
  version: string;
  license: string;
  /** The package's licence file(s), or a pointer to the standard text of its licence. */
  text: string;
  /** Set when the package ships no licence file: the standard text to print (once). */
  standard?: string;
}

const LICENCE_FILE = /^(licen[cs]e|copying|notice)([.-].*)?$/i;
/** Standard licence texts (SPDX id + .txt) for packages that ship none (e.g. @firebase/*). */
const STANDARD_TEXTS = join(import.meta.dirname, 'licences');
/** Code inside bundled packages whose authors' notices the npm packages do not carry. */
const EMBEDDED: Record<string, string[]> = {
  dwv: ['JPEG baseline and JPEG 2000 decoders from pdf.js (Mozilla): Apache-2.0',
    'JPEG lossless decoder JPEGLosslessDecoderJS (rii-mango): MIT'],
  '@cornerstonejs/codec-charls': ['CharLS (team-charls), compiled to WebAssembly: BSD-3-Clause'],
};

/** The package directory a bundled module file belongs to, or null (app code, virtual). */
export function packageDirOf(moduleId: string): string | null {
  const file = moduleId.replace(/^\0/, '').split('?')[0];
  const marker = `${sep}node_modules${sep}`;
  const at = file.lastIndexOf(marker);
  if (at < 0) return null;
  const rest = file.slice(at + marker.length).split(sep);
  const depth = rest[0].startsWith('@') ? 2 : 1;
  if (rest.length <= depth) return null;
  return file.slice(0, at + marker.length) + rest.slice(0, depth).join(sep);
}

function licenceId(pkg: Record<string, any>): string {
  const l = pkg.license ?? pkg.licenses;
  if (typeof l === 'string') return l;
  if (Array.isArray(l)) return l.map((x) => x?.type ?? String(x)).join(' OR ');
  if (l && typeof l === 'object' && l.type) return String(l.type);
  return 'UNKNOWN';
}

export function readPackage(dir: string): PackageNotice {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const files = readdirSync(dir).filter((f) => LICENCE_FILE.test(f)).sort();
  const license = licenceId(pkg);
  let text = files.map((f) => readFileSync(join(dir, f), 'utf8').replace(/\r\n?/g, '\n').trim()).join('\n\n');
  let standard: string | undefined;
  if (!text) {
    const path = join(STANDARD_TEXTS, `${license}.txt`);
    if (!existsSync(path)) {
      throw new Error(`${pkg.name} ships no licence text and ${path} is missing: add the standard text`);
    }
    standard = readFileSync(path, 'utf8').trim();
    text = `The package ships no licence file: see the standard ${license} text at the end.`;
  }
  const embedded = EMBEDDED[pkg.name];
  if (embedded) text = `Also contains:\n${embedded.map((e) => `  - ${e}`).join('\n')}\n\n${text}`;
  return { name: pkg.name, version: pkg.version, license, text, standard };
}

/** The packages behind a list of module ids, once each, by name. */
export function packagesOf(moduleIds: Iterable<string>): PackageNotice[] {
  const dirs = new Set<string>();
  for (const id of moduleIds) {
    let dir = packageDirOf(id);
    // A nested package.json (e.g. an "exports" subfolder) without a name is not the package.
    while (dir && !existsSync(join(dir, 'package.json'))) dir = dirname(dir);
    if (dir) dirs.add(dir);
  }
  const byKey = new Map<string, PackageNotice>();
  for (const dir of dirs) {
    const p = readPackage(dir);
    byKey.set(`${p.name}@${p.version}`, p);
  }
  return [...byKey.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function noticeText(packages: PackageNotice[], sourceUrl?: string): string {
  const rule = '='.repeat(78);
  const head = [
    'Open-source licences of the Radiology PACS web client',
    '',
    'The JavaScript this site sends to your browser contains the packages below.',
    'The DICOM viewer (dwv) is licensed under the GNU General Public License version 3;',
    'the web client that includes it is therefore offered under GPL-3.0 as well.',
    sourceUrl ? `Its complete corresponding source: ${sourceUrl}`
      : 'Its complete corresponding source is available from the operator of this site on request.',
    '',
    'Package                                   Version      Licence',
    ...packages.map((p) => `${p.name.padEnd(42)}${p.version.padEnd(13)}${p.license}`),
    '',
  ];
  const bodies = packages.map((p) => [rule, `${p.name} ${p.version} - ${p.license}`, rule, '', p.text, '']
    .join('\n'));
  const standards = new Map(packages.filter((p) => p.standard).map((p) => [p.license, p.standard!]));
  const tail = [...standards].map(([id, text]) => [rule, `Standard text: ${id}`, rule, '', text, ''].join('\n'));
  return [...head, ...bodies, ...tail].join('\n');
}

/** Two plugins sharing what they see: `worker()` goes into `worker.plugins` (workers are
 *  bundled separately, before the main bundle is written), `main()` into `plugins`. */
export function thirdPartyLicences(fileName = 'third-party-licences.txt') {
  const seen = new Set<string>();
  const collect = (bundle: Record<string, any>) => {
    for (const chunk of Object.values(bundle)) {
      if (chunk.type === 'chunk') for (const id of chunk.moduleIds ?? Object.keys(chunk.modules ?? {})) seen.add(id);
    }
  };
  const worker = (): Plugin => ({ name: 'third-party-licences:worker', generateBundle(_o, bundle) { collect(bundle); } });
  const main = (extraModules: string[] = []): Plugin => ({
    name: 'third-party-licences',
    apply: 'build',
    generateBundle(_o, bundle) {
      collect(bundle);
      for (const id of extraModules) seen.add(id);
      const packages = packagesOf(seen);
      if (!packages.length) this.error('the licence notice found no npm package in the bundle');
      this.emitFile({ type: 'asset', fileName, source: noticeText(packages, process.env.PACS_SOURCE_URL) });
    },
  });
  return { worker, main };
}
