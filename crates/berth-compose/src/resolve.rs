//! Step 4: what the typed services refer to: environment values, volumes
//! declared or implied, and each service's deploy strategy.

use std::collections::BTreeMap;

use berth_core::{DeployStrategy, VolumeName};

use crate::normalize::Compose;
use crate::plan::{MountSource, NamedVolume, Service};

/// Finishes each service's environment: a key written without a value
/// takes the variable of that name (`lookup`), as compose does, and is
/// left out when there is none.
pub fn resolve(
    compose: Compose,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Service>, Vec<NamedVolume>) {
    let mut volumes = compose.volumes;
    let mut services = Vec::new();
    for (mut service, env) in compose.services {
        service.environment = env
            .into_iter()
            .filter_map(|(k, v)| {
                let v = v.or_else(|| lookup(&k))?;
                Some((k, v))
            })
            .collect();
        for mount in &service.volumes {
            // Coolify templates use named volumes without declaring them;
            // compose would refuse, berth declares them for the stack.
            if let MountSource::Volume { name, volume } = &mount.source
                && !volumes.iter().any(|v| &v.name == name)
            {
                volumes.push(NamedVolume {
                    name: name.clone(),
                    volume: volume.clone(),
                    labels: BTreeMap::new(),
                });
            }
        }
        let stateful = service.volumes.iter().filter(|m| {
            !matches!(
                m.source,
                MountSource::Tmpfs { .. }
                    | MountSource::Bind {
                        content: Some(_),
                        ..
                    }
            )
        });
        service.strategy = DeployStrategy::choose(None, stateful.count()).0;
        services.push(service);
    }
    // `pg_data` and `pg-data` are two compose volumes but one DNS label:
    // the second gets a suffix, and every mount follows its volume.
    let mut taken: Vec<VolumeName> = Vec::new();
    for v in &mut volumes {
        v.volume = v.volume.first_free(|n| taken.contains(n));
        taken.push(v.volume.clone());
    }
    for service in &mut services {
        for mount in &mut service.volumes {
            if let MountSource::Volume { name, volume } = &mut mount.source
                && let Some(v) = volumes.iter().find(|v| &v.name == name)
            {
                *volume = v.volume.clone();
            }
        }
    }
    (services, volumes)
}
