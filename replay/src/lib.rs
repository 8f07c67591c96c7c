//! casebook-replay: the auditors' and data teams' CLI (grows in its own issue).
