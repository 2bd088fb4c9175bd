//! The services the web layer calls, one per kind of resource. Each is a
//! cheap handle on the shared [`Runtime`] (it derefs to it, so the code of a
//! service reaches the store, Docker and the locks through `self`); the UI
//! form and the API handler of an action call the same service function.

use std::ops::Deref;

use crate::Runtime;

macro_rules! services {
    ($($(#[$doc:meta])* $field:ident: $name:ident,)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone)]
            pub struct $name {
                runtime: Runtime,
            }

            impl Deref for $name {
                type Target = Runtime;
                fn deref(&self) -> &Runtime {
                    &self.runtime
                }
            }
        )*

        /// Every service, for the web layer's state.
        #[derive(Clone)]
        pub struct Services {
            $(pub $field: $name,)*
        }

        impl Runtime {
            /// The services built on this runtime.
            pub fn services(&self) -> Services {
                Services {
                    $($field: $name { runtime: self.clone() },)*
                }
            }

            $(
                #[allow(dead_code, reason = "services reach each other through these; not every pair does yet")]
                pub(crate) fn $field(&self) -> $name {
                    $name { runtime: self.clone() }
                }
            )*
        }
    };
}

services! {
    /// Projects: the groups apps live in, each with its Docker network.
    projects: Projects,
    /// Apps: create, find, start, stop, restart, delete, logs.
    apps: Apps,
    /// Deployments: queue (deploy, redeploy, rollback), cancel, history,
    /// logs, and each app's deploy settings.
    deployments: Deployments,
    /// Environment variables of apps, projects and the whole server.
    env: Env,
    /// Domains, the dashboard's domain, and the hosts apps answer to.
    domains: Domains,
    /// Stacks: compose files and templates installed as sets of services.
    stacks: Stacks,
    /// Managed databases: one service each, with credentials and a volume.
    databases: Databases,
    /// Volumes and bind mounts: the Storage page and each app's mounts.
    storage: Storage,
    /// Deploy webhooks.
    webhooks: Webhooks,
    /// Admin accounts, sessions and API tokens.
    accounts: Accounts,
    /// The Docker engine's status, as the dashboard shows it.
    system: System,
    /// Backups of database services: destinations, schedules, back up now, restore.
    backups: Backups,
}
