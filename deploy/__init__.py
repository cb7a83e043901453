"""The deploy step (issue 9): stage each function of ``infra/functions.json`` into its own
build folder and print (dry run) or run (``--apply``) every command that sets up the cloud
project: APIs, Firestore, buckets, topics, service accounts and their grants, functions,
dead-letter policies, Cloud Scheduler jobs, log retention and ``firebase deploy``.

``python -m deploy --project P --region R [--apply]``; see ``docs/deploy.md``.
"""
