"""Breach response: incidents, their scope from the typed trail, ENISA severity, the
Art. 33 notification to the CNIL and the Art. 34 notices to patients, and the drill."""
