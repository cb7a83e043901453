/// <reference types="vitest/config" />
// Build of the web client. Two things Vite cannot find on its own:
// - dwv starts its image decoders as module workers at `assets/workers/*.min.js` relative
//   to the document base (`<base href="/">`), so they are copied there;
// - the third-party licence notice is generated from what the bundle contains
//   (vite-licences.ts);
// - the privacy policy is the project's shared text (`../../shared/privacy-policy.txt`,
//   PACS_POLICY_FILE overrides), imported as `virtual:privacy-policy` (its text, and its
//   version: the "Effective date" line, which the consent choice is recorded under) and
//   also published as /privacy-policy.txt; /.well-known/security.txt names its contact
//   (PACS_SECURITY_CONTACT overrides) for vulnerability reports.
import { defineConfig, type Plugin } from 'vite';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { thirdPartyLicences } from './vite-licences.ts';
import { policyVersionOf, securityTxt } from './src/policy.ts';

const here = import.meta.dirname;
const policyFile = process.env.PACS_POLICY_FILE || resolve(here, '../../shared/privacy-policy.txt');
const dwvWorkers = resolve(here, 'node_modules/dwv/dist/assets/workers');
const licences = thirdPartyLicences();

const processorsFile = resolve(here, '../infra/processors.json');

/** The Processors page's rows: the services of infra/processors.json that hold personal
 * data (the deploy plan enables exactly the services of that file: deploy/privacy.py). */
function processorRows(): string {
  const fields = ['name', 'entity', 'purpose', 'data', 'location', 'privacy', 'dpa'];
  const { services } = JSON.parse(readFileSync(processorsFile, 'utf8'));
  const rows = services.filter((s: Record<string, unknown>) => s.personal_data === true)
    .map((s: Record<string, unknown>) => Object.fromEntries(fields.map((f) => [f, String(s[f] ?? '')])));
  return `export default ${JSON.stringify(rows)};`;
}

function pacsAssets(): Plugin {
  const virtualId = 'virtual:privacy-policy';
  const processorsId = 'virtual:processors';
  return {
    name: 'pacs-assets',
    resolveId(id) {
      return id === virtualId || id === processorsId ? '\0' + id : null;
    },
    load(id) {
      if (id === '\0' + processorsId) {
        this.addWatchFile(processorsFile);
        return processorRows();
      }
      if (id !== '\0' + virtualId) return null;
      if (!existsSync(policyFile)) {
        this.error(`privacy policy not found at ${policyFile} (set PACS_POLICY_FILE)`);
      }
      this.addWatchFile(policyFile);
      const text = readFileSync(policyFile, 'utf8');
      // The policy's version is its "Effective date" line, as the functions read it
      // (functions/pacs/settings.py policy_version_of; deploy/plan.py sets it for them).
      let version: string;
      try {
        version = policyVersionOf(text);
      } catch (err) {
        this.error(`${policyFile}: ${(err as Error).message}`);
      }
      return `export default ${JSON.stringify(text)};\nexport const version = ${JSON.stringify(version)};`;
    },
    generateBundle() {
      for (const name of readdirSync(dwvWorkers)) {
        if (!name.endsWith('.min.js')) continue;
        this.emitFile({ type: 'asset', fileName: `assets/workers/${name}`,
          source: readFileSync(resolve(dwvWorkers, name)) });
      }
      if (existsSync(policyFile)) {
        const policy = readFileSync(policyFile, 'utf8');
        this.emitFile({ type: 'asset', fileName: 'privacy-policy.txt', source: policy });
        // Hosting uploads dot-folders only because firebase.json's ignore spares .well-known.
        this.emitFile({ type: 'asset', fileName: '.well-known/security.txt',
          source: securityTxt(policy, process.env.PACS_SECURITY_CONTACT, new Date()) });
      }
    },
  };
}

export default defineConfig({
  base: '/',
  // The notice of bundled packages (/third-party-licences.txt) sees the workers' bundles too;
  // dwv's copied decoder workers are dwv's.
  plugins: [pacsAssets(), licences.main(readdirSync(dwvWorkers).map((n) => resolve(dwvWorkers, n)))],
  // The transcoding worker is a module worker (it imports the CharLS module and its .wasm).
  worker: { format: 'es', plugins: () => [licences.worker()] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    modulePreload: { polyfill: false },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
