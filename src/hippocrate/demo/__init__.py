"""Synthetic data for the demo and the tests: realistic, French, and never real."""
