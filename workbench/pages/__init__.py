"""One module per served page, composed from the views."""
