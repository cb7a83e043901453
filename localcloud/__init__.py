"""The local cloud: real emulators, one functions-framework worker per function, an
Eventarc-like event router and a Cloud-Scheduler-like scheduler, all on loopback."""
