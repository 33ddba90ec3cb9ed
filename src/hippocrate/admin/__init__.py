"""Administration and support: staff accounts, account status, sessions, metadata."""
