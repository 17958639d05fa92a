"""HTTP plumbing: errors, parameters, schemas, the spec, cursors and request guards (Flask here only)."""
