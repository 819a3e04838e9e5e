//! The key_access layer: Key Protect's `keyCreateImportAccess` instance policy.
