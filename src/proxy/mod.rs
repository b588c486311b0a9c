//! The fault proxy: a Toxiproxy-compatible server built in, and the client
//! dualwrite uses to drive any Toxiproxy (built in or real).

pub mod toxic;
