#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod account;
mod command;
mod image;
mod name;
mod port;

pub use account::{Password, PasswordError, Username, UsernameError};
pub use command::{Command, CommandError};
pub use image::{ImageRef, ImageRefError};
pub use name::{AppName, NameError, ProjectName};
pub use port::{Port, PortError};
mod status;
pub use status::AppStatus;
