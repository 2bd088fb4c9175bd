//! Ids of stored things, one type per kind, so an app's id can never be
//! passed where a deployment's is meant. The store makes them from rows;
//! everyone else only passes them on.

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id of a stored row (the store's side of the boundary).
            pub const fn new(id: i64) -> Self {
                $name(id)
            }

            /// The number the database keeps.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

ids! {
    /// A project (`projects.id`).
    ProjectId,
    /// An app (`apps.id`).
    AppId,
    /// A deployment (`deployments.id`; users see its per-app number instead).
    DeploymentId,
    /// A domain routed to an app or a static site (`domains.id`).
    DomainId,
    /// An admin account (`users.id`).
    UserId,
    /// An API token (`api_tokens.id`).
    ApiTokenId,
    /// A stack (`stacks.id`).
    StackId,
    /// A managed database (`databases.id`).
    DatabaseId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_number_in_json_and_in_text() {
        let id = AppId::new(42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<AppId>("42").unwrap(), id);
        assert_eq!(id.to_string(), "42");
        assert_eq!(id.get(), 42);
    }
}
