//! Structural schema validation (placeholder module replaced by the schema work).
