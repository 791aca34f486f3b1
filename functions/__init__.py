"""The two Cloud Functions: `webhook` (HTTP, Telegram updates in, jobs out) and `worker`
(Pub/Sub, jobs in, replies out). `main.py` exposes them to functions-framework."""
