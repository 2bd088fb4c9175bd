#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod acme;
pub mod certs;
pub mod hold;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod statics;
pub mod tls;

pub use hold::HoldGuard;
pub use proxy::Limits;
pub use routes::{Route, RouteTable, Target};
pub use server::{Edge, EdgeError, Listeners, serve};
