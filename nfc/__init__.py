"""NFC: PC/SC readers through pyscard, Type 4 NDEF tags and tap-to-checkout."""
