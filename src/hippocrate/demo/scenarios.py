"""The demo's scenarios: ``hippocrate.guard.scenarios`` (the honeytokens' too)."""

from hippocrate.guard.scenarios import SCENARIOS, Document, Scenario, say

__all__ = ["SCENARIOS", "Document", "Scenario", "say"]
