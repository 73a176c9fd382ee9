"""The Microsoft Graph source: msal authentication, a polite HTTP transport, msgraph-sdk for typed
directory reads, and one reader per workload."""
