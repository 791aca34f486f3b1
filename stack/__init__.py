"""The local stack: real emulators, a local Bot API server and the two functions, for
the demo bot and the end-to-end tests."""
