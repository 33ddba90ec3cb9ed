"""The one access policy: who may read or change which patient data."""
