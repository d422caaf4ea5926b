"""The staff console (issue 10): a feature that serves `/staff` on the staff
listener, keeps a live card of the mirror from the bus, and lets logged-in
staff push suggestions and answer requests. See `service.py`."""
