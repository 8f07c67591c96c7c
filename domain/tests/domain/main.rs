//! Behaviour of the domain: given/when/then per aggregate, policies, values, upcasting, and
//! property tests over random command sequences.

mod decision;
mod diagnosis;
mod finetune;
mod judgment;
mod people;
mod policy;
mod properties;
mod session;
mod support;
mod tenant;
mod upcast;
mod values;
