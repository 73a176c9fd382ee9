"""A Microsoft Graph v1.0 stand-in: a deterministic synthetic tenant served over HTTPS, for the
tests and the demo. Nothing in it is real personal data."""
