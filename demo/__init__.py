"""The demo that `make run` starts: seed data and the `flask dev` supervisor."""
