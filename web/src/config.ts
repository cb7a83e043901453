// Runtime configuration: Firebase Hosting serves the project's web config at
// /__/firebase/init.json; the local hosting server serves the same URL with the emulator
// hosts added, so one build runs against `make dev`, a test stack, or production.

export interface EmulatorConfig {
  /** "same-origin": the Auth emulator is reached through the hosting server. */
  auth?: string;
  firestore?: { host: string; port: number };
}

export interface AppConfig {
  projectId: string;
  apiKey: string;
  authDomain?: string;
  appId?: string;
  apiBase: string;
  emulators?: EmulatorConfig;
  /** HIPAA automatic logoff: sign out after this much inactivity. */
  idleTimeoutSeconds: number;
  /** Local analytics sink (tests); production counts events through the privacy API. */
  analyticsEndpoint?: string;
}

// Production sets the idle time at build time (VITE_IDLE_TIMEOUT_SECONDS=600 make web),
// since Hosting's own init.json cannot carry it; the local server's init.json overrides.
const BUILD_IDLE = Number(import.meta.env?.VITE_IDLE_TIMEOUT_SECONDS);
export const DEFAULT_IDLE_SECONDS = Number.isFinite(BUILD_IDLE) && BUILD_IDLE > 0 ? BUILD_IDLE : 15 * 60;

export function normalizeConfig(raw: Record<string, unknown>): AppConfig {
  const projectId = String(raw.projectId ?? '');
  const apiKey = String(raw.apiKey ?? '');
  if (!projectId || !apiKey) throw new Error('the web configuration has no projectId or apiKey');
  const idle = Number(raw.idleTimeoutSeconds);
  return {
    projectId,
    apiKey,
    authDomain: raw.authDomain ? String(raw.authDomain) : undefined,
    appId: raw.appId ? String(raw.appId) : undefined,
    apiBase: typeof raw.apiBase === 'string' && raw.apiBase ? raw.apiBase.replace(/\/$/, '') : '/api',
    emulators: (raw.emulators as EmulatorConfig | undefined) ?? undefined,
    idleTimeoutSeconds: Number.isFinite(idle) && idle > 0 ? idle : DEFAULT_IDLE_SECONDS,
    analyticsEndpoint: typeof raw.analyticsEndpoint === 'string' ? raw.analyticsEndpoint : undefined,
  };
}

export async function loadConfig(): Promise<AppConfig> {
  const resp = await fetch('/__/firebase/init.json', { cache: 'no-store' });
  if (!resp.ok) throw new Error(`could not load the configuration (HTTP ${resp.status})`);
  return normalizeConfig(await resp.json());
}
