//! Bridge networks: one per project, so containers reach each other by alias
//! and nothing else.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{EndpointSettings, Network, NetworkConnectRequest, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;

use crate::client::label_filters;
use crate::{DockerClient, DockerError};

/// A Docker network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Full network ID.
    pub id: String,
    /// Network name.
    pub name: String,
    /// The network's labels.
    pub labels: BTreeMap<String, String>,
}

impl From<Network> for NetworkInfo {
    fn from(n: Network) -> Self {
        NetworkInfo {
            id: n.id.unwrap_or_default(),
            name: n.name.unwrap_or_default(),
            labels: n.labels.unwrap_or_default().into_iter().collect(),
        }
    }
}

/// The first host address of an IPv4 subnet (`172.17.0.0/16` → `172.17.0.1`).
fn first_address(subnet: &str) -> Option<std::net::IpAddr> {
    let (network, _) = subnet.split_once('/')?;
    let network: std::net::Ipv4Addr = network.parse().ok()?;
    Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
        u32::from(network).checked_add(1)?,
    )))
}

impl DockerClient {
    /// Creates the bridge network `name` with `labels` unless a network of
    /// that name exists already (whatever its labels).
    pub async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), DockerError> {
        // Older engines do not refuse a second network with the same name, so
        // look first, and never look-then-create twice at once.
        let _guard = self.network_lock().lock().await;
        if !self.networks_named(name).await?.is_empty() {
            return Ok(());
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let docker = self.docker().await?;
        match docker
            .create_network(request)
            .await
            .map_err(|e| self.err(e))
        {
            Ok(_) => {
                tracing::info!(network.name = name, "created network");
                Ok(())
            }
            Err(DockerError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Connects a created (or running) container to one more network, with
    /// DNS aliases there. Engines before API 1.44 take one network at
    /// create, so further networks are joined this way, before start.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
    ) -> Result<(), DockerError> {
        crate::containers::container_ref(container)?;
        let docker = self.docker().await?;
        let request = NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(EndpointSettings {
                aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
                ..Default::default()
            }),
        };
        docker
            .connect_network(network, request)
            .await
            .map_err(|e| self.err(e))
    }

    /// Removes every network called `name`; Ok when there is none. Fails while
    /// containers are still attached.
    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        let docker = self.docker().await?;
        for network in self.networks_named(name).await? {
            match docker
                .remove_network(&network.id)
                .await
                .map_err(|e| self.err(e))
            {
                Ok(()) => tracing::info!(network.name = name, "removed network"),
                Err(DockerError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Networks carrying all the given labels (an empty value matches any
    /// value of that key); every network when `labels` is empty.
    pub async fn list_networks(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<NetworkInfo>, DockerError> {
        self.query_networks(label_filters(labels)).await
    }

    /// The gateway address of Docker's default `bridge` network (`None`
    /// when there is none): an address of the host's own when dockerd runs
    /// in the host's network namespace.
    pub async fn bridge_gateway(&self) -> Result<Option<std::net::IpAddr>, DockerError> {
        let docker = self.docker().await?;
        let network = match docker
            .inspect_network(
                "bridge",
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .map_err(|e| self.err(e))
        {
            Ok(n) => n,
            Err(DockerError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(network
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| match c.gateway.filter(|g| !g.is_empty()) {
                Some(gateway) => gateway.parse().ok(),
                // Not always reported: Docker gives the subnet's first address.
                None => first_address(c.subnet.as_deref()?),
            })
            .next())
    }

    /// Networks whose name is exactly `name` (Docker's filter matches substrings).
    async fn networks_named(&self, name: &str) -> Result<Vec<NetworkInfo>, DockerError> {
        let filters = HashMap::from([("name".to_owned(), vec![name.to_owned()])]);
        let mut networks = self.query_networks(filters).await?;
        networks.retain(|n| n.name == name);
        Ok(networks)
    }

    async fn query_networks(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Vec<NetworkInfo>, DockerError> {
        let docker = self.docker().await?;
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.err(e))?;
        let mut networks: Vec<NetworkInfo> = networks.into_iter().map(NetworkInfo::from).collect();
        networks.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(networks)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_subnets_first_address_is_its_gateway() {
        assert_eq!(
            super::first_address("172.17.0.0/16"),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(super::first_address("fd00::/64"), None);
    }
}
