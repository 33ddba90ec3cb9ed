"""The audit trail: every access to patient data, hash-chained, with signed checkpoints."""
