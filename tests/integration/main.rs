//! The one integration-test binary.
mod gdn_reference;
