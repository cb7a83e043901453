import { initializeApp, type FirebaseApp } from 'firebase/app';
import { initializeAuth, connectAuthEmulator, type Auth, inMemoryPersistence,
  browserSessionPersistence } from 'firebase/auth';
import { initializeFirestore, connectFirestoreEmulator, type Firestore } from 'firebase/firestore';
import type { AppConfig } from './config';

export interface Backend {
  app: FirebaseApp;
  auth: Auth;
  db: Firestore;
  config: AppConfig;
}

let backend: Backend | undefined;

export async function initBackend(config: AppConfig): Promise<Backend> {
  const app = initializeApp({
    apiKey: config.apiKey,
    projectId: config.projectId,
    authDomain: config.authDomain,
    appId: config.appId,
  });
  // A session lives in this tab only (sessionStorage), never across browser restarts:
  // PHI on shared computers. The emulator must be connected before the stored user is
  // reloaded, so initializeAuth (not getAuth + setPersistence).
  const auth = initializeAuth(app, { persistence: [browserSessionPersistence, inMemoryPersistence] });
  const db = initializeFirestore(app, { experimentalAutoDetectLongPolling: true });
  const emu = config.emulators;
  if (emu?.auth) {
    const url = emu.auth === 'same-origin' ? window.location.origin : emu.auth;
    connectAuthEmulator(auth, url, { disableWarnings: true });
  }
  await auth.authStateReady();
  if (emu?.firestore) {
    connectFirestoreEmulator(db, emu.firestore.host, emu.firestore.port);
  }
  backend = { app, auth, db, config };
  return backend;
}

export function getBackend(): Backend {
  if (!backend) throw new Error('backend not initialised');
  return backend;
}
