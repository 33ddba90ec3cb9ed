"""Records that travel: FHIR export, and import of an existing platform's patients."""
