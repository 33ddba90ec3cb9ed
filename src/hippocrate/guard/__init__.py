"""The guard: watches every access and contains whoever reads like a thief."""
