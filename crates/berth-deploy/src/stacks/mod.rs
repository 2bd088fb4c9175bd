//! Stacks: the services of one compose file, installed as one resource.
//!
//! A stack's containers are `berth_<project>_<stack>_<service>`, its
//! volumes `berth_<project>_<stack>_<volume>`, and it has a network of its
//! own (`berth_<project>_<stack>`) where services reach each other by
//! service name. Services with a route also join the project network as
//! `<stack>-<service>`; the edge reaches them at their address on the
//! stack network, so nothing is published on the host unless the user
//! ticked a port. Generated values are made once at install and stored
//! sealed: an update or a restart never makes new ones.

use std::collections::BTreeMap;

use berth_compose::Plan;
use berth_compose::plan::Warning;
use berth_core::{DomainName, ProjectName, Stack, StackName, StackSource};

use crate::{DeployError, Stacks};

mod install;
mod view;

pub use view::{ServiceState, ServiceView, StackRoute, StackView};

/// What the user asks for when installing a stack (the install form, or
/// `POST /api/v1/projects/{project}/stacks`).
#[derive(Debug, Clone)]
pub struct StackRequest {
    pub name: StackName,
    pub source: StackSource,
    /// Values for the plan's inputs, by name.
    pub inputs: BTreeMap<String, String>,
    /// The admin confirmed the plan's dangerous settings (privileged, host
    /// network, the Docker socket, host paths outside the volumes root…).
    pub confirm_dangerous: bool,
    /// Ports the user ticked to publish on the host.
    pub publish: Vec<Publish>,
}

/// A container port published on the host: on 127.0.0.1, or on every
/// interface when `public` (which the form confirms separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub service: String,
    pub port: u16,
    pub public: bool,
}

/// What an update asks for: a new file (or the same one again), and the
/// inputs (missing ones keep their installed values).
#[derive(Debug, Clone, Default)]
pub struct StackUpdate {
    pub source: Option<StackSource>,
    pub inputs: BTreeMap<String, String>,
}

/// Which services an update recreated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// A plan as the install form and `dry_run` show it, with the hosts the
/// routes would get.
#[derive(Debug, Clone)]
pub struct PlanPreview {
    pub plan: Plan,
    /// Per route of the plan (same order): the host it would answer on.
    pub hosts: Vec<Option<DomainName>>,
}

impl PlanPreview {
    /// The plan's warnings that need the admin's confirmation.
    pub fn dangers(&self) -> Vec<&Warning> {
        self.plan.dangers().collect()
    }
}

impl Stacks {
    /// berth's own templates, embedded in the binary.
    pub fn catalogue(&self) -> &'static [berth_compose::catalogue::Template] {
        berth_compose::catalogue::TEMPLATES
    }

    /// Plans an install without doing anything (the form's preview and the
    /// API's `dry_run`). The plan carries its own errors; `Err` is for a
    /// project that does not exist, an unknown template, a name in use, or a
    /// git repository that cannot be read.
    pub async fn plan(
        &self,
        project: &ProjectName,
        request: &StackRequest,
    ) -> Result<PlanPreview, DeployError> {
        todo!("{project} {request:?}")
    }

    /// Records the stack and starts bringing it up in the background; the
    /// returned stack is `installing`. Refuses a plan with errors, and one
    /// with dangerous settings unless `confirm_dangerous`.
    pub async fn install(
        &self,
        project: &ProjectName,
        request: StackRequest,
    ) -> Result<Stack, DeployError> {
        todo!("{project} {request:?}")
    }

    /// The project's stacks, by name.
    pub async fn list(&self, project: &ProjectName) -> Result<Vec<Stack>, DeployError> {
        todo!("{project}")
    }

    /// Every stack of every project (the dashboard).
    pub async fn list_all(&self) -> Result<Vec<Stack>, DeployError> {
        todo!()
    }

    /// The stack with its services as Docker has them, and its routes.
    pub async fn get(
        &self,
        project: &ProjectName,
        name: &StackName,
    ) -> Result<StackView, DeployError> {
        todo!("{project} {name}")
    }

    /// Plans the new file (or the same one with new inputs), then recreates
    /// only the services whose configuration changed.
    pub async fn update(
        &self,
        project: &ProjectName,
        name: &StackName,
        update: StackUpdate,
    ) -> Result<UpdateOutcome, DeployError> {
        todo!("{project} {name} {update:?}")
    }

    /// Removes the stack's containers, network and routes; its volumes stay
    /// (listed as orphaned on the Storage page) unless `delete_volumes`.
    pub async fn uninstall(
        &self,
        project: &ProjectName,
        name: &StackName,
        delete_volumes: bool,
    ) -> Result<(), DeployError> {
        todo!("{project} {name} {delete_volumes}")
    }

    /// The last `lines` lines of one service's logs.
    pub async fn service_logs(
        &self,
        project: &ProjectName,
        name: &StackName,
        service: &str,
        lines: usize,
    ) -> Result<Vec<String>, DeployError> {
        todo!("{project} {name} {service} {lines}")
    }
}
