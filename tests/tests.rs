//! kiln integration tests (one binary).
