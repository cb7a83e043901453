"""Checks for what cannot be installed from a registry: the gcloud emulators and Java.
Node and npm packages install from the npm registry; Python ones from PyPI."""

from __future__ import annotations

import shutil

from localcloud import config


class MissingPrerequisite(SystemExit):
    pass


def check() -> None:
    """Stop with a clear message when an emulator or runtime is missing."""
    problems = []
    if not config.FIRESTORE_JAR.exists():
        problems.append(
            f"the Firestore emulator ({config.FIRESTORE_JAR}) is missing: it ships only with the "
            "Google Cloud SDK component 'cloud-firestore-emulator', which no package registry "
            "reachable here provides (install the SDK with that component)")
    if not config.PUBSUB_EMULATOR.exists():
        problems.append(
            f"the Pub/Sub emulator ({config.PUBSUB_EMULATOR}) is missing: it ships only with the "
            "Google Cloud SDK component 'pubsub-emulator', which no package registry reachable "
            "here provides")
    if shutil.which("java") is None:
        problems.append("java (17 or newer) is missing: the gcloud emulators and the Auth "
                        "emulator need it; install it with 'apt-get install openjdk-17-jre-headless'")
    if shutil.which("node") is None:
        problems.append("node is missing: the Firebase Auth emulator (firebase-tools) needs it; "
                        "install Node.js 20 ('apt-get install nodejs npm')")
    if not config.FIREBASE_CLI.exists():
        problems.append(f"firebase-tools is not installed ({config.FIREBASE_CLI}): run 'make install'")
    if problems:
        raise MissingPrerequisite("local cloud cannot start:\n  - " + "\n  - ".join(problems))
