"""The background worker behind a page, and the session state it drives."""
