"""Identity: accounts, passwords, second factors, sessions, sign-in and recovery."""
