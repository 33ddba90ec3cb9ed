"""Outbound email: no health data, and a verification code the recipient can check in the app."""
