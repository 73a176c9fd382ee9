"""Real local servers started from scratch on loopback ports (Radicale, Synapse, Dovecot), for the
test suite and for `make demo`: one implementation, each in its own process group."""
