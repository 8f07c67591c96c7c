//! Behaviour of the domain: given/when/then per aggregate, policies, values, upcasting,
//! stored history past today's limits, and property tests over random command sequences.

mod budget;
mod decision;
mod diagnosis;
mod finetune;
mod history;
mod judgment;
mod own_model;
mod people;
mod personal;
mod policy;
mod properties;
mod session;
mod support;
mod tenant;
mod upcast;
mod values;
