//! Ecstatic ingest library.
