"""Data: datasets (IDX, embedded, download cache), spike encodings, spike trains."""
