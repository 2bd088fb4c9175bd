#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod acme;
pub mod certs;
mod conn;
pub mod forwarded;
pub mod hold;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod statics;
pub mod tls;

pub use conn::raise_open_file_limit;
pub use forwarded::Cidr;
pub use hold::HoldGuard;
pub use proxy::{DASHBOARD_SECRET_HEADER, Limits};
pub use routes::{Route, RouteTable, Target};
pub use server::{Edge, EdgeError, Listeners, serve};
