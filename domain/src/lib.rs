//! casebook-domain
pub mod actor;
pub mod error;
pub mod ids;
pub mod policy;
pub mod tenant;
pub mod values;
