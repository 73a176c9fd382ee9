"""The commented configuration `migrator init` writes; the demo runs on it unchanged."""

CONFIG_TEMPLATE = '''\
# migrator configuration. Paths are relative to this file.
# Secrets are never written here: give a reference, { env = "VAR" } or { file = "/path" }.

[source]
# "example" is the built-in example tenant (invented people and data), for trying the tool.
# "graph" reads a Microsoft 365 tenant through Microsoft Graph:
#   kind = "graph"
#   tenant_id = "contoso.onmicrosoft.com"
#   client_id = "00000000-0000-0000-0000-000000000000"
#   client_secret = { env = "MIGRATOR_CLIENT_SECRET" }
#   ca_bundle = "/etc/ssl/certs/ca-certificates.crt"   # for a private CA
# Certificates are always verified; no key here turns that off (only the command line's
# --insecure-skip-tls-verify does, and the ledger and every report record it).
kind = "example"
seed = 7          # example tenant only: same seed, same data
users = 6

[ledger]
# Every item's fate is recorded here; rerunning a command resumes from it.
# Any SQLAlchemy URL works, e.g. "postgresql+psycopg://migrator@db/migration".
url = "sqlite:///migration.db"

[batch]
# Which users to move: a department as spelt in Entra ID, or a CSV of UPNs (column "upn").
department = "Finance"
# users_file = "finance-wave-1.csv"

[workloads]
enabled = ["mail", "calendar", "contacts", "files", "chat"]

# One target per workload. "directory" writes each item as a file under `path`.
[targets.mail]
kind = "directory"
path = "target/mail"

[targets.calendar]
kind = "directory"
path = "target/calendar"

[targets.contacts]
kind = "directory"
path = "target/contacts"

[targets.files]
kind = "directory"
path = "target/files"

[targets.chat]
kind = "directory"
path = "target/chat"

[identity]
# Who each user becomes on the targets. Placeholders: {upn}, {local} (before the @), {domain}.
imap_login = "{upn}"
nextcloud_user = "{local}"
matrix_id = "@{local}:example.org"
# A CSV with columns upn,imap_login,nextcloud_user,matrix_id overrides the templates per user.
# overrides = "identity-overrides.csv"

[run]
concurrency = 16        # items in flight at once
per_mailbox = 4         # Microsoft Graph serves at most 4 concurrent requests per mailbox
teams_reads_per_second = 20  # Teams message reads, per tenant: divide it between workers running at once
max_attempts = 5        # runs that retry a failed item before it is left for an admin
call_retries = 5        # tries of one throttled or failing call within a run
retry_base_seconds = 1.0
retry_max_seconds = 300
'''
