"""Patients: identity and contact, every field sealed under the patient's data key."""
