#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod acme;
pub mod certs;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod statics;
pub mod tls;
