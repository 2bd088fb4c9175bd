use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("is required")]
    Empty,
    #[error("must be a number from 1 to 65535")]
    Invalid,
}

/// A TCP port the container listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u16")]
pub struct Port(u16);

impl Port {
    pub fn parse(input: &str) -> Result<Self, PortError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(PortError::Empty);
        }
        let n: u32 = input.parse().map_err(|_| PortError::Invalid)?;
        Self::try_from(n)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u32> for Port {
    type Error = PortError;
    fn try_from(n: u32) -> Result<Self, PortError> {
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(PortError::Invalid),
        }
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_ports_and_refuses_the_rest() {
        assert_eq!(Port::parse(" 8080 ").unwrap().get(), 8080);
        assert_eq!(Port::parse(""), Err(PortError::Empty));
        for bad in ["0", "65536", "-1", "80a", "1e3"] {
            assert_eq!(Port::parse(bad), Err(PortError::Invalid), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_port_in_range_round_trips(n in 1u16..=65535) {
            prop_assert_eq!(Port::parse(&n.to_string()).unwrap().get(), n);
        }
    }
}
